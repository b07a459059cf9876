"""`python -m course.ulmfit_sweep` holds the validation runs behind notebook 03's ULMFiT rate. These tests keep
the notebook's rate and the recorded choice together, and run the sweep in the smoke profile."""
import json
from pathlib import Path

from course import config, ulmfit_sweep

RECORDED = Path(__file__).resolve().parents[1] / "results" / "sweeps" / "03_ulmfit.json"


def test_the_cpu_profiles_ulmfit_rate_is_the_recorded_choice():
    recorded = json.loads(RECORDED.read_text())
    assert recorded["profile"] == "cpu"
    tried = sorted(r["learning_rate"] for r in recorded["rows"] if r["variant"] == ulmfit_sweep.COMBINATION)
    assert tried == sorted(ulmfit_sweep.RATES)
    assert config.BUDGETS[ulmfit_sweep.NOTEBOOK]["cpu"]["ulmfit_lr"] == recorded["chosen"]["ulmfit_lr"], (
        "notebook 03's cpu ulmfit_lr differs from the validation sweep's choice: rerun `python -m course.ulmfit_sweep`")


def test_the_sweep_runs_every_variant_and_chooses_the_best_rate():
    found = ulmfit_sweep.sweep("smoke", rates=(1e-3, 1e-2), seeds=(0,))
    rows = found["rows"]
    assert [r["variant"] for r in rows] == [ulmfit_sweep.COMBINATION] * 2 + [
        "ULMFiT, one epoch per stage", "ULMFiT without gradual unfreezing", "full fine-tuning"]
    combination = {r["learning_rate"]: r["accuracy"] for r in rows[:2]}
    assert found["chosen"]["ulmfit_lr"] == max(combination, key=combination.get)
    smoke = config.BUDGETS[ulmfit_sweep.NOTEBOOK]["smoke"]
    assert rows[2]["steps"] == 8 * (smoke["n_train"] // smoke["batch_size"])  # 8 layer groups, one epoch each
    assert {r["learning_rate"] for r in rows[2:4]} == {found["chosen"]["ulmfit_lr"]}
