"""One-time preparation of the offline assets: `python -m ftkit.prepare`.

Converts the packaged models into plain cached checkpoints and extracts the VADER data. Each step is
skipped when its output exists, so running it again costs about a second.
"""
from __future__ import annotations

import os
import time


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every asset here is local; never wait on the network
    from ftkit.data import prepare_vader
    from ftkit.models import cache_dir, prepare_minilm_distilbert, prepare_smollm2

    for name, step in [("VADER human-rated sentences", prepare_vader),
                       ("all-MiniLM-L6-v2 as DistilBERT", prepare_minilm_distilbert),
                       ("SmolLM2-135M-Instruct", prepare_smollm2)]:
        began = time.perf_counter()
        path = step()
        print(f"{name}: {path} ({time.perf_counter() - began:.1f} s)")
    print(f"cache: {cache_dir()}")


if __name__ == "__main__":
    main()
