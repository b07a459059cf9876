"""course: the machinery that runs the fine-tuning course's notebooks in this repository.

Profiles and budgets (`config`), the course's models and data (`models`, `data`), results and plots,
and the tools: `run_notebooks`, `report`, `readme`, `benchmark`, `prepare`, `colab` and the sweeps.
The algorithms the notebooks teach live in the `ftkit` library and never import from here.

It reads and writes the repository's folders (results, data, notebooks), so it runs from a clone
installed in place (`pip install -e .`); a copy installed elsewhere stops here rather than writing its
results next to site-packages. `ftkit` installs and works anywhere.
"""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

if not (REPO_ROOT / "notebooks").is_dir():
    raise ImportError(f"The course package runs from a clone of the course's repository, and {REPO_ROOT} is not "
                      "one (it has no notebooks/ folder). Clone the repository and install it in place with "
                      "`pip install -e .`; the ftkit library itself works from any install.")
