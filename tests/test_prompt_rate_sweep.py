"""`python -m course.prompt_rate_sweep` holds the validation sweeps behind notebook 06's learning rates. These tests
keep the notebook and the recorded sweeps together: same task and start, and the prefix rates it chose."""
import ast
import json
from pathlib import Path

from course import prompt_rate_sweep
from test_drift import code_of_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / f"{prompt_rate_sweep.NOTEBOOK}.ipynb"
RECORDED = ROOT / "results" / "sweeps" / "06_rates.json"


def notebook_constants() -> dict:
    """Every top-level `NAME = <literal>` of notebook 06's code cells."""
    found = {}
    for node in ast.parse(code_of_notebook(NOTEBOOK)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return found


def test_the_sweeps_use_the_notebooks_task_and_start():
    constants = notebook_constants()
    assert constants["TEMPLATE"] == prompt_rate_sweep.TEMPLATE
    assert constants["INIT_TEXT"] == prompt_rate_sweep.INIT_TEXT
    assert constants["N_TOKENS"] == prompt_rate_sweep.N_TOKENS


def test_the_recorded_sweeps_cover_every_rate_and_chose_the_notebooks_prefix_rates():
    recorded = json.loads(RECORDED.read_text())
    assert recorded["profile"] == "cpu"
    for method, tried in prompt_rate_sweep.RATES.items():
        assert sorted(r["learning_rate"] for r in recorded["rows"] if r["method"] == method) == sorted(tried), method
    notebook_rates = notebook_constants()["LEARNING_RATES"]
    chosen_here = prompt_rate_sweep.CHOSEN_HERE
    assert {m: notebook_rates[m] for m in chosen_here} == {m: recorded["chosen"][m] for m in chosen_here}, (
        "notebook 06's prefix rates differ from the sweep's choice: rerun `python -m course.prompt_rate_sweep`")


def test_a_rerun_of_some_methods_keeps_the_others_rows():
    row = lambda method, lr, accuracy: {"method": method, "learning_rate": lr, "accuracy": accuracy}  # noqa: E731
    where = {"profile": "cpu", "validation_sentences": "32 to 351"}
    old = {**where, "rows": [row("LoRA", 1e-3, 0.8), row("IA3", 1e-3, 0.7)], "seconds": {"LoRA": 1, "IA3": 2},
           "chosen": {"LoRA": 1e-3, "IA3": 1e-3}}
    new = {**where, "rows": [row("LoRA", 1e-2, 0.9)], "seconds": {"LoRA": 3}, "chosen": {"LoRA": 1e-2}}
    merged = prompt_rate_sweep.merge(old, new)
    assert merged["rows"] == [row("IA3", 1e-3, 0.7), row("LoRA", 1e-2, 0.9)]
    assert merged["chosen"] == {"IA3": 1e-3, "LoRA": 1e-2} and merged["seconds"] == {"IA3": 2, "LoRA": 3}
    assert prompt_rate_sweep.merge({**old, "profile": "smoke"}, new) == new  # another profile's rows are not mixed in


def test_the_sweep_runs_and_picks_a_rate_per_method():
    found = prompt_rate_sweep.sweep("smoke", n_validation=4,
                                    rates={"prefix tuning": [1e-2], "prefix tuning + MLP": [1e-4], "LoRA": [1e-3]})
    assert [(r["method"], r["learning_rate"]) for r in found["rows"]] == [
        ("prefix tuning", 1e-2), ("prefix tuning + MLP", 1e-4), ("LoRA", 1e-3)]
    assert all(0 <= r["accuracy"] <= 1 for r in found["rows"])
    assert found["chosen"] == {"prefix tuning": 1e-2, "prefix tuning + MLP": 1e-4, "LoRA": 1e-3}
    assert found["validation_sentences"] == "4 to 7 of the validation split"


def test_an_unknown_method_is_named_with_the_ones_there_are():
    import pytest

    with pytest.raises(ValueError, match="no sweep for \\['adapters'\\]; the methods are"):
        prompt_rate_sweep.sweep("smoke", rates={"adapters": [1e-3]})
