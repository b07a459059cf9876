"""`python -m course.lora_rate_sweep` holds the validation sweep behind notebook 04's learning rates. These tests keep
the notebook's budget and the recorded sweep together, and notebook 04's full fine-tune the same run as notebook 03's."""
import json
import math
from pathlib import Path

import pytest

from course import lora_rate_sweep
from course.config import BUDGETS

RECORDED = Path(__file__).resolve().parents[1] / "results" / "sweeps" / "04_rates.json"


def test_the_recorded_sweep_tried_every_rate_and_the_cpu_profile_uses_its_choice():
    recorded = json.loads(RECORDED.read_text())
    assert recorded["profile"] == "cpu"
    for method, tried in lora_rate_sweep.RATES.items():
        assert sorted(r["learning_rate"] for r in recorded["rows"] if r["method"] == method) == sorted(tried), method
    cpu = BUDGETS[lora_rate_sweep.NOTEBOOK]["cpu"]
    assert {key: cpu[key] for key in lora_rate_sweep.BUDGET_KEY.values()} == lora_rate_sweep.chosen_rates(RECORDED), (
        "notebook 04's cpu rates differ from the sweep's choice: rerun `python -m course.lora_rate_sweep`")
    steps = cpu["epochs"] * math.ceil(cpu["n_train"] / cpu["batch_size"])
    assert (recorded["steps"], recorded["training_sentences"]) == (steps, cpu["n_train"])


def test_notebook_04s_cpu_budget_trains_and_tests_as_notebook_03s_full_fine_tune():
    lora, transfer = BUDGETS["04_lora_distilbert"]["cpu"], BUDGETS["03_transfer_learning"]["cpu"]
    for key in ("n_train", "n_test", "batch_size", "max_length"):
        assert lora[key] == transfer[key], key
    assert lora["epochs"] * math.ceil(lora["n_train"] / lora["batch_size"]) == transfer["steps"]


def test_the_sweep_runs_and_picks_a_rate_per_method():
    found = lora_rate_sweep.sweep("smoke", rates={"head only": [1e-3, 1e-2], "LoRA r=8 (q_lin, v_lin)": [1e-3]})
    assert [(r["method"], r["learning_rate"]) for r in found["rows"]] == [
        ("head only", 1e-3), ("head only", 1e-2), ("LoRA r=8 (q_lin, v_lin)", 1e-3)]
    assert all(0 <= r["accuracy"] <= 1 for r in found["rows"])
    best_head = max((r for r in found["rows"] if r["method"] == "head only"), key=lambda r: r["accuracy"])
    assert found["chosen"] == {"head only": best_head["learning_rate"], "LoRA r=8 (q_lin, v_lin)": 1e-3}


def test_an_unknown_method_is_named_with_the_ones_there_are():
    with pytest.raises(ValueError, match="no sweep for \\['adapters'\\]; the methods are"):
        lora_rate_sweep.sweep("smoke", rates={"adapters": [1e-3]})
