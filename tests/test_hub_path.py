"""The Hub path against the emulated Hub (`tests/emulated_hub.py`): canonical ids load offline, every
sentiment subset the course draws holds both labels, and DialogSum is scored once per dialogue.

The facts are gathered in one subprocess, because `HF_HOME` is read when the Hugging Face libraries are
imported (and one launch pays those imports once); each test checks its part.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from course import config, models
from course.notebooks import NOTEBOOKS

ROOT = Path(__file__).resolve().parents[1]
# Budget keys that size a subset of the movie-sentiment splits, and the split each draws from.
SUBSET_KEYS = {"n_train": "train", "n_test": "test", "n_sweep": "validation"}


@pytest.fixture(scope="module")
def emulated_hub():
    root = models.cache_dir() / "emulated-hub"
    subprocess.run([sys.executable, str(ROOT / "tests" / "emulated_hub.py"), str(root)], check=True,
                   capture_output=True)
    return root


# What the tests below read from the emulated Hub: one script, one JSON line.
FACTS_SCRIPT = """
import json
from datasets import load_dataset
from course import config, data, models

stored = load_dataset("knkarthick/dialogsum")["test"]
test = data.load_dialogue_summaries()["test"]
names = {p: config.model_for("llama", "hub", p) for p in ("cpu", "gpu")}
decoder, _ = models.load_causal_lm(names["gpu"])
encoder, _ = models.load_sequence_classifier(config.model_for("sequence_classifier", "hub", "cpu"))
# The offline source last: choosing it switches this process to offline.
labels = {source: {split: list(rows["label"]) for split, rows in data.load_sentiment("movies", seed=0, source=source).items()}
          for source in ("hub", "offline")}
print(json.dumps({
    "labels": labels,
    "imdb_stored_test_labels": list(load_dataset("stanfordnlp/imdb")["test"]["label"])[:50],
    "dialogsum": {"stored": len(stored), "distinct": len(set(stored["dialogue"])), "rows": len(test),
                  "unique": len(set(test["dialogue"])), "references": sorted({len(r) for r in test["references"]}),
                  "first_is_summary": all(r[0] == s for r, s in zip(test["references"], test["summary"]))},
    "canonical": {"names": names, "decoder_layers": decoder.config.num_hidden_layers,
                  "encoder": type(encoder).__name__, "device": str(next(decoder.parameters()).device)}}))
"""


@pytest.fixture(scope="module")
def on_the_hub(emulated_hub) -> dict:
    env = {**os.environ, "HF_HOME": str(emulated_hub), "FTKIT_MODELS": "hub", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", FACTS_SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def subset_sizes() -> list[tuple[str, str, str, int]]:
    """(notebook, profile, split, n) for every movie-sentiment subset a budget asks for."""
    sizes = []
    for notebook, budgets in config.BUDGETS.items():
        if "movie_sentiment" not in NOTEBOOKS[notebook].uses:
            continue
        for profile, budget in budgets.items():
            sizes += [(notebook, profile, split, budget[key]) for key, split in SUBSET_KEYS.items() if key in budget]
            if "sizes" in budget:  # 02's tasks: [train, test] per task
                train, test = budget["sizes"]["sentiment"]
                sizes += [(notebook, profile, "train", train), (notebook, profile, "test", test)]
    return sizes


@pytest.mark.parametrize("source", config.MODEL_SOURCES)
def test_every_sentiment_subset_the_course_draws_holds_both_labels(on_the_hub, source):
    labels = on_the_hub["labels"][source]
    one_class = [(notebook, profile, split, n) for notebook, profile, split, n in subset_sizes()
                 if len(set(labels[split][:n])) < 2]
    assert not one_class, f"{source}: subsets with one label only: {one_class}"


def test_imdb_is_stored_sorted_by_label_so_the_first_rows_would_be_one_class(on_the_hub):
    stored = on_the_hub["imdb_stored_test_labels"]
    assert set(stored) == {0}, "the emulation keeps IMDB's stored order, which is what the loader must undo"


def test_dialogsum_test_split_is_scored_once_per_dialogue_against_all_references(on_the_hub):
    found = on_the_hub["dialogsum"]
    assert found["stored"] == 3 * found["distinct"]
    assert found["rows"] == found["unique"] == found["distinct"]
    assert found["references"] == [3] and found["first_is_summary"]


def test_the_canonical_ids_load_from_the_emulated_hub_on_the_configured_paths(on_the_hub):
    loaded = on_the_hub["canonical"]
    assert loaded["names"] == {"cpu": "HuggingFaceTB/SmolLM2-135M-Instruct", "gpu": "NousResearch/Llama-2-7b-hf"}
    assert loaded["decoder_layers"] == 32 and loaded["encoder"] == "DistilBertForSequenceClassification"
    assert loaded["device"] == models.default_device()
