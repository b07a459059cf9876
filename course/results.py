"""Each notebook's headline figures, written to `results/<notebook>.json` and read back as one table.

A record holds what notebook 08 compares: method, task, trainable and total parameters, peak memory,
wall time, a quality metric with its name (and the untrained baseline's value), profile and hardware.
Records are keyed by (method, task, profile): a rerun replaces its own record and leaves the others.
The folder is `FTKIT_RESULTS` when set (tests point it at a temporary folder), else `results/` in the
repository.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from course import REPO_ROOT

FIELDS = ("notebook", "method", "task", "metric", "value", "baseline", "trainable_params", "total_params",
          "peak_memory_gb", "memory_measure", "wall_time_s", "profile", "models", "hardware", "recorded_at")
# How `peak_memory_gb` was measured: "run" is ftkit.train.PeakMemory's per-run figure (the trained model's
# weights plus what the run added). Records without it hold the whole process's peak, from before that measure.
MEMORY_MEASURE = "run"


def results_dir() -> Path:
    """Where results files live: `FTKIT_RESULTS`, else `results/` in the repository."""
    return Path(os.environ.get("FTKIT_RESULTS", REPO_ROOT / "results"))


RECORDED_DIR = REPO_ROOT / "results"  # the results committed with the course, whatever FTKIT_RESULTS says


def _sweep_file(name: str, profile: str) -> str:
    return f"{name}.json" if profile == "cpu" else f"{name}_{profile}.json"


def sweep_path(name: str, profile: str) -> Path:
    """Where a validation sweep is written: `sweeps/<name>.json` for the cpu profile, whose sweeps the
    notebooks show and the tests check, and `sweeps/<name>_<profile>.json` for the others, so that a smoke
    or gpu sweep never replaces the recorded cpu one."""
    return results_dir() / "sweeps" / _sweep_file(name, profile)


def recorded_sweep(name: str, profile: str) -> tuple[Path, str]:
    """The committed sweep `name` of `profile`, else the cpu one: `(path, the profile it was recorded under)`."""
    own = RECORDED_DIR / "sweeps" / _sweep_file(name, profile)
    return (own, profile) if own.exists() else (RECORDED_DIR / "sweeps" / _sweep_file(name, "cpu"), "cpu")


def recorded_results(profile: str):
    """The committed results of `profile`, else the cpu ones: `(table, the profile they come from)`."""
    table = load_results(RECORDED_DIR, profile=profile)
    if len(table) or profile == "cpu":
        return table, profile
    return load_results(RECORDED_DIR, profile="cpu"), "cpu"


def stand_in_notice(wanted: str, shown: str) -> str:
    """A sentence for a notebook that shows another profile's recorded figures ('' when they are its own)."""
    if wanted == shown:
        return ""
    return (f"No {wanted}-profile figures are recorded yet: these are the {shown} profile's, measured on another "
            f"machine with smaller budgets.")


def record(config, method: str, *, task: str, metric: str, value: float, baseline: float | None = None,
           trainable_params: int | None = None, total_params: int | None = None,
           peak_memory_gb: float | None = None, wall_time_s: float | None = None, **extra) -> dict:
    """Write one headline figure of `config.notebook` (a `course.config.RunConfig`) and return the record.

    `value` is the quality metric named by `metric` after training, `baseline` the same metric before.
    Extra keyword arguments are stored too (numbers or short strings).
    """
    entry = {
        "notebook": config.notebook, "method": method, "task": task, "metric": metric, "value": value,
        "baseline": baseline, "trainable_params": trainable_params, "total_params": total_params,
        "peak_memory_gb": peak_memory_gb, "memory_measure": MEMORY_MEASURE if peak_memory_gb is not None else None,
        "wall_time_s": wall_time_s, "profile": config.profile,
        "models": config.models, "hardware": config.hardware,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra,
    }
    path = results_dir() / f"{config.notebook}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    records = json.loads(path.read_text())["records"] if path.exists() else []
    key = (method, task, config.profile)
    records = [r for r in records if (r["method"], r["task"], r["profile"]) != key] + [entry]
    path.write_text(json.dumps({"notebook": config.notebook, "records": records}, indent=1) + "\n")
    return entry


def load_results(directory: str | Path | None = None, profile: str | None = None):
    """Every results file in `directory` (default `results_dir()`) as one pandas DataFrame.

    `profile` keeps only the records of one profile (e.g. `cpu`).
    """
    import pandas as pd

    folder = Path(directory) if directory is not None else results_dir()
    rows = [r for path in sorted(folder.glob("*.json")) for r in json.loads(path.read_text())["records"]]
    table = pd.DataFrame(rows, columns=list(dict.fromkeys([*FIELDS, *(k for r in rows for k in r)])))
    if profile is not None:
        table = table[table["profile"] == profile].reset_index(drop=True)
    return table
