"""Each notebook's headline figures, written to `results/<notebook>.json` and read back as one table.

A record holds what notebook 08 compares: method, task, trainable and total parameters, peak memory,
wall time, a quality metric with its name (and the untrained baseline's value), how many examples it was
measured on (`n_eval`), the paired standard error of its gain over the baseline (`gain_se`), profile and
hardware. Records are keyed by (method, task, profile): a rerun replaces its own record and leaves the others.
A record may also keep its per-example scores (`scores/<notebook>.json`, one line each), so that two methods
measured on the same examples can be compared pairwise later.
The folder is `FTKIT_RESULTS` when set (tests point it at a temporary folder), else `results/` in the
repository.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from course import REPO_ROOT

FIELDS = ("notebook", "method", "task", "metric", "value", "baseline", "n_eval", "gain_se", "trainable_params",
          "total_params", "peak_memory_gb", "memory_measure", "wall_time_s", "profile", "models", "hardware", "recorded_at")
# How `peak_memory_gb` was measured: "run" is ftkit.train.PeakMemory's per-run figure (the trained model's
# weights plus what the run added). Records without it hold the whole process's peak, from before that measure.
MEMORY_MEASURE = "run"
# The judges notebook 07 scores its policies with and never optimizes: a preference record keeps
# `<column>_gain` and `<column>_gain_se` for each (column -> name in words). Notebook 08 reads the same names.
PREFERENCE_JUDGES = {"second_rm": "the second reward model", "vader": "VADER"}


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


def run_sweep_command(argv, *, description: str, name: str, sweep, show) -> int:
    """The command line of a validation sweep (`python -m course.<name>_sweep [--profile cpu]`): run
    `sweep(profile)`, write its result to `sweep_path(name, profile)`, print it with `show(path)`."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "gpu"])
    args = parser.parse_args(argv)
    found = sweep(args.profile)
    path = sweep_path(name, args.profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(found, indent=1) + "\n")
    show(path)
    print(f"written to {path}")
    return 0


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
           peak_memory_gb: float | None = None, wall_time_s: float | None = None, n_eval: int | None = None,
           gain_se: float | None = None, scores=None, scores_unit: str | None = None, **extra) -> dict:
    """Write one headline figure of `config.notebook` (a `course.config.RunConfig`) and return the record.

    `value` is the quality metric named by `metric` after training, `baseline` the same metric before,
    `n_eval` the number of examples both were measured on and `gain_se` the paired standard error of
    `value - baseline` (`ftkit.evaluate.paired_difference`). `scores` are the per-example values behind
    `value`, in the evaluation set's order: they are kept in `scores/<notebook>.json` and give `n_eval` when
    it is not passed. `scores_unit` names their unit where it is not the metric's own: a perplexity is the
    exponential of the mean per-block loss, so its scores are losses in "nats per token", and pairwise gaps
    between such records are read in that unit. Extra keyword arguments are stored too (numbers or short
    strings).
    """
    if scores_unit is not None and scores is None:
        raise ValueError("scores_unit was given without scores: pass the per-example scores it describes.")
    if scores is not None:
        scores = [x if isinstance(x, int) else float(x) for x in scores]  # 0/1 stay short in the file
        n_eval = len(scores) if n_eval is None else n_eval
        if n_eval != len(scores):
            raise ValueError(f"n_eval={n_eval} but {len(scores)} per-example scores were given: pass scores for "
                             "every evaluated example, or leave n_eval out.")
    entry = {
        "notebook": config.notebook, "method": method, "task": task, "metric": metric, "value": value,
        "baseline": baseline, "n_eval": n_eval, "gain_se": gain_se, "trainable_params": trainable_params, "total_params": total_params,
        "peak_memory_gb": peak_memory_gb, "memory_measure": MEMORY_MEASURE if peak_memory_gb is not None else None,
        "wall_time_s": wall_time_s, "profile": config.profile,
        "models": config.models, "hardware": config.hardware,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra,
    }
    if scores_unit is not None:
        entry["scores_unit"] = scores_unit
    path = results_dir() / f"{config.notebook}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    records = json.loads(path.read_text())["records"] if path.exists() else []
    key = (method, task, config.profile)
    records = [r for r in records if (r["method"], r["task"], r["profile"]) != key] + [entry]
    path.write_text(json.dumps({"notebook": config.notebook, "records": records}, indent=1) + "\n")
    if scores is not None:
        _write_scores(config.notebook, key, scores)
    return entry


def _scores_path(notebook: str, directory: Path | None = None) -> Path:
    return (directory if directory is not None else results_dir()) / "scores" / f"{notebook}.json"


def _write_scores(notebook: str, key: tuple, scores: list) -> None:
    path = _scores_path(notebook)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = [e for e in (json.loads(path.read_text()) if path.exists() else []) if tuple(e["key"]) != key]
    entries = kept + [{"key": list(key), "scores": scores}]
    # One line per record keeps the file readable and its diffs small.
    path.write_text("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")


def load_scores(notebook: str, method: str, task: str, profile: str, directory: str | Path | None = None):
    """The per-example scores kept with a record (a list, in the evaluation set's order), or None."""
    path = _scores_path(notebook, Path(directory) if directory is not None else None)
    if not path.exists():
        return None
    return next((e["scores"] for e in json.loads(path.read_text()) if tuple(e["key"]) == (method, task, profile)),
                None)


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
