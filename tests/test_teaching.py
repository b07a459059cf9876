"""The teacher's guide is generated from recorded runs and the notebooks' exercise cells, and its plans fit."""
import pytest

from course import readme, teaching
from course.notebooks import NOTEBOOKS
from course.results import REPO_ROOT


@pytest.fixture
def committed_results(monkeypatch):
    monkeypatch.setenv("FTKIT_RESULTS", str(REPO_ROOT / "results"))


def test_the_guide_is_current(committed_results):
    text = readme.TEACHING.read_text()
    assert readme.render_teaching(text) == text, "run `python -m course.readme`"


@pytest.mark.parametrize("plan", teaching.PLANS, ids=[p.title for p in teaching.PLANS])
def test_each_plan_fits_its_length(plan, committed_results):
    plan_total = teaching.plan_total(plan)
    assert 0 < plan_total <= plan.minutes, f"{plan.title} needs {plan_total:.0f} minutes"


def test_the_day_covers_every_notebook_and_every_exercise(committed_results):
    assert [s.notebook for s in teaching.ONE_DAY.steps] == list(NOTEBOOKS)
    chosen = {c for s in teaching.ONE_DAY.steps for c in s.exercises}
    assert chosen == {e.check_name for found in teaching.exercises().values() for e in found}


def test_every_notebook_has_a_widget():
    assert [n for n in NOTEBOOKS if teaching.widget_count(n) == 0] == []


def test_a_plan_naming_a_missing_exercise_or_run_says_what_to_do(committed_results):
    step = teaching.Step("04_lora_distilbert", "cpu", 5, ("check_nothing",))
    with pytest.raises(ValueError, match="check_lora_forward"):
        teaching.step_minutes(step, teaching.run_times(), teaching.exercises_by_check())
    with pytest.raises(ValueError, match="run_notebooks --profile gpu"):
        teaching.step_minutes(teaching.Step("04_lora_distilbert", "gpu", 5), {}, {})
