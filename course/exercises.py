"""Checked exercises: call a learner's function on fresh inputs, compare its values with the course's own
implementation, and say either "correct" or what is wrong, without raising.

Each notebook's checks live in its course module (`course.lora_distilbert.check_lora_forward`, ...) and are
built from `check`. A check never disturbs the notebook's random state, so cells after an exercise give the
same numbers whether or not the learner ran it. Solutions sit in the repository's `solutions/` folder.
"""
from __future__ import annotations

import json
import math
import random
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = ["Case", "NotebookExercise", "Verdict", "check", "difference", "fresh_generator", "notebook_exercises",
           "preserved_random_state"]


@dataclass(frozen=True)
class Case:
    """One call of the learner's function: its arguments and the value the course's implementation gives."""
    args: tuple
    expected: Any
    kwargs: dict | None = None


@dataclass(frozen=True)
class Verdict:
    """What a check found. Shown in a notebook as its message, read by tests through `correct`."""
    correct: bool
    message: str

    def __repr__(self) -> str:
        return self.message

    __str__ = __repr__


def fresh_generator(seed: int) -> torch.Generator:
    """A private generator, so a check's inputs neither depend on nor move the notebook's seeded state."""
    return torch.Generator().manual_seed(seed)


def _location(index: tuple[int, ...]) -> str:
    return "element " + str(index[0] if len(index) == 1 else index)


def difference(got: Any, expected: Any, *, atol: float = 1e-5, rtol: float = 1e-4) -> str | None:
    """None when `got` matches `expected`; otherwise one sentence naming the first thing that differs:
    the type, the shape, or the element with its expected and actual values.

    Tensors, numpy arrays, numbers, and tuples, lists and dicts of them are compared.
    """
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"expected a sequence of {len(expected)} values, got {_describe(got)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            found = difference(g, e, atol=atol, rtol=rtol)
            if found:
                return f"in value {i} of {len(expected)}: {found}"
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            return f"expected a dict with keys {sorted(expected)}, got {_describe(got)}"
        for key in expected:
            found = difference(got[key], expected[key], atol=atol, rtol=rtol)
            if found:
                return f"in {key!r}: {found}"
        return None
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        expected_t = torch.as_tensor(expected)
        if not isinstance(got, (torch.Tensor, np.ndarray)):
            return f"expected a tensor of shape {tuple(expected_t.shape)}, got {_describe(got)}"
        got_t = torch.as_tensor(got).detach().cpu()
        expected_t = expected_t.detach().cpu()
        if got_t.shape != expected_t.shape:
            return f"expected shape {tuple(expected_t.shape)}, got shape {tuple(got_t.shape)}"
        if expected_t.dtype == torch.bool or not expected_t.is_floating_point():
            wrong = got_t.to(expected_t.dtype) != expected_t
        else:
            got_f, expected_f = got_t.double(), expected_t.double()
            wrong = ~torch.isclose(got_f, expected_f, atol=atol, rtol=rtol, equal_nan=True)
        if wrong.any():
            index = tuple(int(i) for i in wrong.nonzero()[0])
            n_wrong = int(wrong.sum())
            return (f"{_location(index)} should be {_number(expected_t[index])} but is {_number(got_t[index])} "
                    f"({n_wrong} of {wrong.numel()} elements differ)")
        return None
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if not isinstance(got, (int, float, np.number)) or isinstance(got, bool):
            return f"expected a number, got {_describe(got)}"
        if not math.isclose(float(got), float(expected), rel_tol=rtol, abs_tol=atol):
            return f"should be {_number(expected)} but is {_number(got)}"
        return None
    if got != expected:
        return f"should be {expected!r} but is {got!r}"
    return None


def _number(value: Any) -> str:
    value = value.item() if isinstance(value, torch.Tensor) else value
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _describe(value: Any) -> str:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"a {type(value).__name__} of shape {tuple(value.shape)}"
    if value is None:
        return "None (did the function forget to return its result?)"
    return f"a {type(value).__name__}"


@contextmanager
def preserved_random_state():
    """Restore the random state of torch (CPU), numpy and Python on leaving, whatever ran inside."""
    with torch.random.fork_rng(devices=[]):
        numpy_state, python_state = np.random.get_state(), random.getstate()
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)


def check(title: str, learner: Callable, make_cases: Callable[[], Sequence[Case]], *, atol: float = 1e-5, rtol: float = 1e-4,
          hint: str = "") -> Verdict:
    """Call `learner` on each case `make_cases()` builds and compare with the case's expected value.

    Returns a Verdict that reads "correct: ..." or "not yet: ..." with the first difference and `hint`.
    Whatever the learner's code raises is reported, not raised, so a notebook with untouched stubs still
    runs top to bottom; the random state of torch, numpy and Python is restored afterwards.
    """
    name = getattr(learner, "__name__", "your function")
    with preserved_random_state():
        cases = list(make_cases())
        for number, case in enumerate(cases, 1):
            try:
                got = learner(*case.args, **(case.kwargs or {}))
            except NotImplementedError:
                return Verdict(False, f"not yet: {name} is still the stub. Replace its "
                                      f"`raise NotImplementedError` with your code, then run the cell again.")
            except Exception as error:  # the learner's code, whatever it raises, is reported not raised
                return Verdict(False, f"not yet: {name} raised {type(error).__name__}: {error} "
                                      f"(on test input {number} of {len(cases)})")
            found = difference(got, case.expected, atol=atol, rtol=rtol)
            if found:
                advice = f" Hint: {hint}" if hint else ""
                return Verdict(False, f"not yet: on test input {number} of {len(cases)}, {found}.{advice}")
    return Verdict(True, f"correct: {name} matches the course's {title} on {len(cases)} fresh inputs.")


# ---------------------------------------------------------------------------------------------------
# Finding the exercises in the notebooks (for the teacher's guide and the tests)
# ---------------------------------------------------------------------------------------------------

EXERCISE_TAG = "exercise"
_TITLE = re.compile(r"^# Exercise \(about (\d+) minutes\): (.+)$")


@dataclass(frozen=True)
class NotebookExercise:
    """An exercise cell: its notebook, its one-sentence title, the minutes it is planned to take, its source."""
    notebook: str
    title: str
    minutes: int
    source: str

    @property
    def check_name(self) -> str:
        """The check the cell ends with, e.g. `check_lora_forward`."""
        return self.source.strip().splitlines()[-1].split("(")[0]


def notebook_exercises(path: Path) -> list[NotebookExercise]:
    """The exercise cells (code cells tagged "exercise") of the notebook at `path`, in order.

    Each begins with `# Exercise (about N minutes): <title>`; a cell that does not is an error naming it.
    """
    found = []
    for cell in json.loads(Path(path).read_text())["cells"]:
        if cell["cell_type"] != "code" or EXERCISE_TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        source = "".join(cell["source"])
        title = _TITLE.match(source.splitlines()[0] if source else "")
        if not title:
            raise ValueError(f"An exercise cell of {Path(path).name} does not begin with "
                             f"'# Exercise (about N minutes): ...': {source[:80]!r}")
        found.append(NotebookExercise(Path(path).stem, title.group(2), int(title.group(1)), source))
    return found
