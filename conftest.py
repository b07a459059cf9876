"""Test-wide settings: the smoke profile, offline models unless told otherwise, results into a temporary folder.

They are set at import time, before nbval starts any kernel, because kernels inherit this environment.
`make test-hub` runs the notebooks again with `FTKIT_MODELS=hub` against the emulated Hub
(`tests/emulated_hub.py`, under `HF_HOME`); there, pinned outputs of cells tagged `pinned-offline`
(counts and values of the packaged models) are not compared, and every other pin still is.
"""
import os
import tempfile

os.environ["FTKIT_PROFILE"] = "smoke"
os.environ.setdefault("FTKIT_MODELS", "offline")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["MPLBACKEND"] = "Agg"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("FTKIT_RESULTS", tempfile.mkdtemp(prefix="ftkit-results-"))

OFFLINE_PIN_TAG = "pinned-offline"

# The scopes that take longest, longest first: seconds summed over their tests in a two-worker `make test`
# (smoke, 2 cores, AVX-512, 2026-12-03); every other scope took under 6 s. pytest-xdist hands each worker
# whole scopes in the order they are collected (with `--no-loadscope-reorder`), so the long ones start first
# and the short ones fill in at the end, and no worker is left alone with a long notebook.
SLOWEST_FIRST = (
    "notebooks/06_soft_prompts_adapters.ipynb",  # 72 s
    "notebooks/07_rlhf.ipynb",  # 58 s
    "notebooks/05_qlora_llama.ipynb",  # 52 s
    "tests/test_distributed.py",  # 46 s
    "notebooks/02_supervised_instruction.ipynb",  # 41 s
    "notebooks/04_lora_distilbert.ipynb",  # 38 s
    "notebooks/03_transfer_learning.ipynb",  # 36 s
    "notebooks/01_self_supervised.ipynb",  # 32 s
    "tests/test_hub_path.py",  # 16 s
    "tests/test_prompt_rate_sweep.py",  # 15 s
    "tests/test_ulmfit_sweep.py",  # 14 s
    "notebooks/00_start_here.ipynb",  # 12 s
    "notebooks/08_choosing_a_method.ipynb",  # 7 s
    "tests/test_lora_rate_sweep.py",  # 6 s
)


def slowest_first(items) -> list:
    """`items` with the scopes of SLOWEST_FIRST moved to the front in its order; each scope's own order kept."""
    rank = {scope: i for i, scope in enumerate(SLOWEST_FIRST)}
    return sorted(items, key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


def pytest_collection_modifyitems(config, items):
    items[:] = slowest_first(items)
    if os.environ["FTKIT_MODELS"] != "hub":
        return
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and OFFLINE_PIN_TAG in cell.metadata.get("tags", []):
            item.options["check"] = False
