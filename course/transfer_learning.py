"""Notebook 03's results glue: a variant's row in the results table, recording it, and the sentences
read off the table. The transfer-learning methods themselves are in `ftkit.transfer`.
"""
from __future__ import annotations

from torch import nn

from ftkit.train import TrainResult
from ftkit.transfer import trainable_count


def result_row(variant: str, model: nn.Module, result: TrainResult, accuracy: float, *,
               trainable: int | None = None, **extra) -> dict:
    """A results-table row: variant, trainable parameters, wall time (s), peak memory (GiB), accuracy."""
    return {"variant": variant, "trainable_params": trainable if trainable is not None else trainable_count(model),
            "wall_time_s": result.wall_time_s, "peak_memory_gb": result.peak_memory_gb,
            "test_accuracy": accuracy, **extra}


def record_variant(config, rows: list[dict], variant: str, model: nn.Module, result: TrainResult,
                   baseline: float, *, trainable: int | None = None, task: str = "movie-review sentiment") -> dict:
    """Append a variant's row to `rows`, record it with `course.results.record`, print a one-line summary."""
    from course import results

    accuracy = result.evaluations[-1]["accuracy"]
    row = result_row(variant, model, result, accuracy, trainable=trainable)
    rows.append(row)
    results.record(config, variant, task=task, metric="test accuracy", value=accuracy, baseline=baseline,
                   trainable_params=row["trainable_params"], total_params=sum(p.numel() for p in model.parameters()),
                   peak_memory_gb=row["peak_memory_gb"], wall_time_s=row["wall_time_s"])
    print(f"{variant}: test accuracy {accuracy:.1%} (untrained {baseline:.1%}), "
          f"{row['trainable_params']:,} trainable parameters; {result.summary()}")
    return row


def conclusions(table, baseline: float, tolerance: float = 0.01) -> list[str]:
    """'What to use when', read off a results table (a DataFrame with the `result_row` columns).

    Each sentence is computed from the measured rows, so it holds for whatever this run measured.
    """
    best = table.loc[table["test_accuracy"].idxmax()]
    near = table[table["test_accuracy"] >= best["test_accuracy"] - tolerance]
    fastest = near.loc[near["wall_time_s"].idxmin()]
    smallest = near.loc[near["trainable_params"].idxmin()]
    cheapest = table.loc[table["wall_time_s"].idxmin()]
    lines = [f"Best accuracy: {best['variant']} with {best['test_accuracy']:.1%} "
             f"({(best['test_accuracy'] - baseline) * 100:+.1f} points over the untrained {baseline:.1%}).",
             f"Within {tolerance * 100:.0f} point(s) of it, the fastest is {fastest['variant']} "
             f"({fastest['wall_time_s']:.0f} s against {best['wall_time_s']:.0f} s) and the one training the fewest "
             f"parameters is {smallest['variant']} ({smallest['trainable_params']:,}).",
             f"The cheapest run overall, {cheapest['variant']}, took {cheapest['wall_time_s']:.0f} s and reached "
             f"{cheapest['test_accuracy']:.1%}: {(best['test_accuracy'] - cheapest['test_accuracy']) * 100:.1f} points "
             f"below the best."]
    return lines
