"""Regenerate the README's measured tables from the results files: `python -m course.readme`.

The README holds no hand-typed measurement: its notebook map (with each notebook's run time per
profile, from `results/timings/notebooks.json`, written by `make run`), its set-up and test-suite
times (from `results/timings/setup.json`, written by `python -m course.benchmark`) and its table of what
each notebook loads on each path (from `course.config`) are generated here, between marker comments, and so
are its module tables, the module map of `docs/architecture.md` (from the code, `course.module_map`) and the
teacher's guide `docs/teaching.md` (`course.teaching`).
`tests/test_readme.py` checks that they are current.
"""
from __future__ import annotations

import json
from pathlib import Path

from course import module_map, teaching
from course.generated import replace_blocks
from course.notebooks import NOTEBOOKS
from course.results import REPO_ROOT, results_dir


def _minutes(entry: dict | None) -> str:
    if not entry:
        return "not measured yet"
    return f"{entry['seconds'] / 60:.1f} min"


def notebook_map() -> str:
    path = results_dir() / "timings" / "notebooks.json"
    times = json.loads(path.read_text()) if path.exists() else {}
    gpu_hardware = {e["gpu"]["hardware"] for e in times.values() if "gpu" in e}
    cpu_hardware = {e["cpu"]["hardware"] for e in times.values() if "cpu" in e}
    header = (f"| notebook | what it teaches | `cpu` profile ({', '.join(sorted(cpu_hardware)) or 'CPU'}) | "
              f"`gpu` profile ({', '.join(sorted(gpu_hardware)) or 'GPU'}) |")
    rows = [header, "|---|---|---|---|"]
    for name, notebook in NOTEBOOKS.items():
        link = f"[{name}](notebooks/{name}.ipynb)" if notebook.path.exists() else f"{name} (not written yet)"
        entry = times.get(name, {})
        rows.append(f"| {link} | {notebook.teaches} | {_minutes(entry.get('cpu'))} | {_minutes(entry.get('gpu'))} |")
    return "\n".join(rows)


def setup_timings() -> str:
    path = results_dir() / "timings" / "setup.json"
    if not path.exists():
        return "Set-up and test-suite times have not been measured yet (`python -m course.benchmark`)."
    t = json.loads(path.read_text())
    return (f"Measured by `python -m course.benchmark` on {t['date']} ({t['hardware']}, commit {t['commit']}, "
            f"fresh clone, empty caches): set-up {t['setup_seconds'] / 60:.1f} min"
            f"{'' if t['setup_ok'] else ' (failed)'}, test suite {t['test_seconds'] / 60:.1f} min"
            f"{'' if t['tests_ok'] else ' (failed)'}.")


def _name(name: str, packaged: bool) -> str:
    return name if packaged else f"`{name}`"


def path_table() -> str:
    """What each notebook loads on each path: the model roles and data sets of `course.notebooks.NOTEBOOKS`,
    resolved through `config.model_for` / `config.data_for` (the smoke profile loads what cpu loads)."""
    from course.config import DATA_NAMES, MODEL_NAMES, data_for, model_for

    paths = [("offline", "cpu"), ("hub", "cpu"), ("hub", "gpu")]
    rows = ["| notebook | offline (any profile) | hub, `smoke` and `cpu` | hub, `gpu` |", "|---|---|---|---|"]
    for notebook in NOTEBOOKS.values():
        uses, cells = notebook.uses, []
        for source, profile in paths:
            names = [model_for(u, source, profile) if u in MODEL_NAMES else data_for(u, source) for u in uses]
            packaged = [u not in MODEL_NAMES and (u not in DATA_NAMES or source == "offline") for u in uses]
            cells.append(", ".join(_name(n, k) for n, k in zip(names, packaged)) or "recorded results only")
        rows.append(f"| {notebook.name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


BLOCKS = {"notebook-map": notebook_map, "timings": setup_timings, "paths": path_table,
          "modules-ftkit": lambda: module_map.table("ftkit", with_imports=False),
          "modules-course": lambda: module_map.table("course", with_imports=False)}
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
TEACHING = REPO_ROOT / "docs" / "teaching.md"
ARCHITECTURE_BLOCKS = {"map-totals": module_map.totals, "map-ftkit": lambda: module_map.table("ftkit"),
                       "map-course": lambda: module_map.table("course")}


def render(readme: str) -> str:
    """`readme` with every generated block replaced by its current content."""
    return replace_blocks(readme, BLOCKS, "README.md")


def render_architecture(text: str) -> str:
    """`docs/architecture.md` with its module map replaced by the one read from the code now."""
    return replace_blocks(text, ARCHITECTURE_BLOCKS, "docs/architecture.md")


def render_teaching(text: str) -> str:
    """`docs/teaching.md` with its times, exercises and workshop plans computed now."""
    return replace_blocks(text, teaching.BLOCKS, "docs/teaching.md")


def main() -> None:
    for path, make in ((REPO_ROOT / "README.md", render), (ARCHITECTURE, render_architecture),
                       (TEACHING, render_teaching)):
        path.write_text(make(path.read_text()))
        print(f"updated {path}")


if __name__ == "__main__":
    main()
