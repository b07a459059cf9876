"""Test-wide settings: the smoke profile, offline models, results into a temporary folder.

They are set at import time, before nbval starts any kernel, because kernels inherit this environment.
"""
import os
import tempfile

os.environ["FTKIT_PROFILE"] = "smoke"
os.environ["FTKIT_MODELS"] = "offline"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["MPLBACKEND"] = "Agg"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("FTKIT_RESULTS", tempfile.mkdtemp(prefix="ftkit-results-"))
