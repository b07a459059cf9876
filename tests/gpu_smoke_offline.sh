#!/usr/bin/env bash
# `make gpu-smoke` on a CUDA machine with PyTorch but without internet, from a bundle that
# `python tests/gpu_bundle.py DIR` built on a machine with the package index:
#
#   bash tests/gpu_smoke_offline.sh DIR [pytest options]
#
# It installs the bundle's wheels into a folder of their own (the machine's PyTorch stays), rebuilds the
# emulated Hub's tiny models from the bundle's tokenizers, and runs every notebook's smoke budget with the
# Hub's model ids on CUDA, failing if a parameter or batch stays on the CPU. Run from the repository root.
set -euo pipefail
bundle=$(cd "${1:?usage: bash tests/gpu_smoke_offline.sh BUNDLE_DIR [pytest options]}" && pwd)
shift
python=${PYTHON:-python3}
site=${SITE:-/tmp/ftkit-site}
hub=${EMULATED_HUB:-/tmp/ftkit-emulated-hub}

"$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$bundle"/wheels/*.whl
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}" FTKIT_CACHE="$bundle/cache" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
"$python" tests/emulated_hub.py "$hub" --tokenizers-from "$bundle/cache/emulated-hub"
HF_HOME="$hub" FTKIT_MODELS=hub FTKIT_REQUIRE_DEVICE="${FTKIT_REQUIRE_DEVICE-cuda}" \
    "$python" -m pytest -n "${TEST_WORKERS:-4}" --dist loadscope --no-loadscope-reorder notebooks "$@"
