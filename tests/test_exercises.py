"""The exercises: each notebook's exercise cells run with their untouched stubs and report "not yet"; with
the functions from `solutions/` the same checks report "correct"; the checker names what differs."""
import ast
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from course.exercises import Case, Verdict, check, difference, notebook_exercises

ROOT = Path(__file__).resolve().parents[1]


def solutions_for(notebook: Path):
    path = ROOT / "solutions" / f"{notebook.stem}.py"
    spec = importlib.util.spec_from_file_location(f"solutions_{notebook.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def final_check_call(source: str) -> ast.Call:
    last = ast.parse(source).body[-1]
    assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call), \
        "an exercise cell ends with its check, e.g. check_lora_forward(lora_forward)"
    assert last.value.func.id.startswith("check_")
    return last.value


CELLS = [(nb, exercise.source) for nb in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
         for exercise in notebook_exercises(nb)]


def test_the_course_has_its_exercises():
    assert len(CELLS) >= 14


def test_an_exercise_cell_without_its_title_line_is_named(tmp_path):
    notebook = tmp_path / "99_x.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "metadata": {"tags": ["exercise"]},
                                               "source": ["def f():\n", "    pass\n"]}]}))
    with pytest.raises(ValueError, match="99_x.ipynb"):
        notebook_exercises(notebook)


@pytest.mark.parametrize("notebook, source", CELLS, ids=[f"{nb.stem}:{final_check_call(s).func.id}" for nb, s in CELLS])
def test_stub_reports_not_yet_and_solution_reports_correct(notebook, source):
    call = final_check_call(source)
    namespace: dict = {}
    exec(compile(ast.Module(body=ast.parse(source).body[:-1], type_ignores=[]), notebook.name, "exec"), namespace)
    checker = namespace[call.func.id]
    stubs = [namespace[arg.id] for arg in call.args]

    untouched = checker(*stubs)
    assert isinstance(untouched, Verdict) and not untouched.correct
    assert "stub" in untouched.message

    solutions = solutions_for(notebook)
    solved = checker(*[getattr(solutions, stub.__name__) for stub in stubs])
    assert solved.correct, solved.message


def test_difference_names_the_element_and_both_values():
    expected = torch.zeros(2, 3)
    got = expected.clone()
    got[1, 2] = 0.5
    message = difference(got, expected)
    assert "(1, 2)" in message and "should be 0" in message and "is 0.5" in message and "1 of 6" in message
    assert difference(expected.clone(), expected) is None
    assert "shape (3, 2)" in difference(torch.zeros(3, 2), expected)
    assert "None" in difference(None, expected)
    assert difference(np.float64(2.0), 2.0) is None
    assert "in value 1" in difference((1.0, 2.0), (1.0, 3.0))


def test_check_reports_errors_without_raising_and_keeps_the_random_state():
    def broken(x):
        return x @ torch.zeros(5, 5)

    torch.manual_seed(0)
    before = torch.get_rng_state()
    verdict = check("thing", broken, lambda: [Case((torch.randn(2, 3),), torch.zeros(2, 3))])
    assert not verdict.correct and "RuntimeError" in verdict.message
    assert torch.equal(torch.get_rng_state(), before)
    assert check("thing", lambda x: x, lambda: [Case((1.0,), 1.0)]).correct
