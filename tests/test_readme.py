"""The README's measured figures are generated from results files, never typed: they must be current."""
import os

import pytest

from course import readme
from course.results import REPO_ROOT


def test_generated_blocks_are_current(monkeypatch):
    monkeypatch.setenv("FTKIT_RESULTS", str(REPO_ROOT / "results"))  # the committed results, not the test's
    text = (REPO_ROOT / "README.md").read_text()
    assert readme.render(text) == text, "run `python -m course.readme` after `make run` / `python -m course.benchmark`"


def test_the_module_map_is_current():
    text = readme.ARCHITECTURE.read_text()
    assert readme.render_architecture(text) == text, "run `python -m course.readme` after adding or changing a module"


def test_missing_markers_are_reported():
    with pytest.raises(ValueError, match="notebook-map"):
        readme.render("no markers here")


def test_readme_names_the_commands_ci_runs():
    text = (REPO_ROOT / "README.md").read_text()
    assert "make test" in text and "make test" in (REPO_ROOT / ".ci" / "run").read_text()
