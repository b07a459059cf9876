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


def pytest_collection_modifyitems(config, items):
    if os.environ["FTKIT_MODELS"] != "hub":
        return
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and OFFLINE_PIN_TAG in cell.metadata.get("tags", []):
            item.options["check"] = False
