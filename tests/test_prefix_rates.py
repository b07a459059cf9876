"""`python -m ftkit.prefix_rates` chose notebook 06's prefix-tuning rates on validation sentences. These
tests keep the notebook and the recorded choice together: same task and start, same rates."""
import ast
import json
from pathlib import Path

from ftkit import prefix_rates
from test_drift import code_of_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / f"{prefix_rates.NOTEBOOK}.ipynb"
RECORDED = ROOT / "results" / "sweeps" / "06_prefix_rates.json"


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


def test_the_sweep_uses_the_notebooks_task_and_start():
    constants = notebook_constants()
    assert constants["TEMPLATE"] == prefix_rates.TEMPLATE
    assert constants["INIT_TEXT"] == prefix_rates.INIT_TEXT
    assert constants["N_TOKENS"] == prefix_rates.N_TOKENS


def test_the_notebooks_prefix_rates_are_the_recorded_choice():
    recorded = json.loads(RECORDED.read_text())
    rates = notebook_constants()["LEARNING_RATES"]
    assert recorded["profile"] == "cpu"
    assert {method: rates[method] for method in prefix_rates.RATES} == recorded["chosen"], (
        "notebook 06's prefix rates differ from the sweep's choice: rerun `python -m ftkit.prefix_rates`")
    for method, tried in prefix_rates.RATES.items():
        assert sorted(r["learning_rate"] for r in recorded["rows"] if r["method"] == method) == sorted(tried)


def test_the_sweep_runs_and_picks_a_rate_per_method():
    found = prefix_rates.sweep("smoke", n_validation=4, rates={"prefix tuning": [1e-2], "prefix tuning + MLP": [1e-4]})
    assert [(r["method"], r["learning_rate"]) for r in found["rows"]] == [("prefix tuning", 1e-2),
                                                                          ("prefix tuning + MLP", 1e-4)]
    assert all(0 <= r["accuracy"] <= 1 for r in found["rows"])
    assert found["chosen"] == {"prefix tuning": 1e-2, "prefix tuning + MLP": 1e-4}
    assert found["validation_sentences"] == "8 to 11 of the validation split"
