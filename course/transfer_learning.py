"""Notebook 03's results glue: a variant's row in the results table, recording it with its per-sentence
results, and the sentences read off the table (near the best means tied with it by a paired standard error). The transfer-learning methods themselves are in `ftkit.transfer`.
"""
from __future__ import annotations

from torch import nn

from ftkit.train import TrainResult
from ftkit.params import count_parameters


def result_row(variant: str, model: nn.Module, result: TrainResult, accuracy: float, *,
               trainable: int | None = None, **extra) -> dict:
    """A results-table row: variant, trainable parameters, wall time (s), peak memory (GiB), accuracy."""
    return {"variant": variant, "trainable_params": trainable if trainable is not None else count_parameters(model).trainable,
            "wall_time_s": result.wall_time_s, "peak_memory_gb": result.peak_memory_gb,
            "test_accuracy": accuracy, **extra}


def record_variant(config, rows: list[dict], variant: str, model: nn.Module, result: TrainResult,
                   baseline: float, *, trainable: int | None = None, task: str = "movie-review sentiment",
                   baseline_correct: list[int] | None = None, correct_by_variant: dict | None = None) -> dict:
    """Append a variant's row to `rows`, record it with `course.results.record`, print a one-line summary.

    Where the run's last evaluation holds `correct` (1 or 0 per test sentence) and `baseline_correct` is given,
    the record keeps those scores and the paired standard error of the gain, and `correct_by_variant` (if given)
    gets them under the variant's name, for paired comparisons between variants."""
    from course import results
    from ftkit.evaluate import paired_difference

    accuracy = result.evaluations[-1]["accuracy"]
    correct = result.evaluations[-1].get("correct")
    row = result_row(variant, model, result, accuracy, trainable=trainable)
    rows.append(row)
    paired = {}
    if correct is not None and baseline_correct is not None:
        paired = {"scores": correct, "gain_se": paired_difference(correct, baseline_correct)[1]}
        if correct_by_variant is not None:
            correct_by_variant[variant] = correct
    results.record(config, variant, task=task, metric="test accuracy", value=accuracy, baseline=baseline,
                   trainable_params=row["trainable_params"], total_params=sum(p.numel() for p in model.parameters()),
                   peak_memory_gb=row["peak_memory_gb"], wall_time_s=row["wall_time_s"], **paired)
    print(f"{variant}: test accuracy {accuracy:.1%} (untrained {baseline:.1%}), "
          f"{row['trainable_params']:,} trainable parameters; {result.summary()}")
    return row


def conclusions(table, baseline: float, correct: dict | None = None, tolerance: float = 0.01) -> list[str]:
    """'What to use when', read off a results table (a DataFrame with the `result_row` columns).

    With `correct` (variant -> 1 or 0 per test sentence, the same sentences for all), "near the best" means a
    paired gap to the best within two standard errors (`course.gaps`), a tie; variants without per-sentence
    scores, or every variant without `correct`, count as near when within `tolerance` of the best.
    Each sentence is computed from the measured rows, so it holds for whatever this run measured.
    """
    from course.gaps import is_tie
    from ftkit.evaluate import paired_difference

    correct = correct or {}
    best = table.loc[table["test_accuracy"].idxmax()]

    def ties_with_best(row) -> bool:
        if row["variant"] in correct and best["variant"] in correct:
            return is_tie(*paired_difference(correct[row["variant"]], correct[best["variant"]]))
        return row["test_accuracy"] >= best["test_accuracy"] - tolerance

    near = table[table.apply(ties_with_best, axis=1)]
    fastest = near.loc[near["wall_time_s"].idxmin()]
    smallest = near.loc[near["trainable_params"].idxmin()]
    cheapest = table.loc[table["wall_time_s"].idxmin()]
    closeness = ("Tied with it (a paired gap within two standard errors)" if correct
                 else f"Within {tolerance * 100:.0f} point(s) of it")
    lines = [f"Best accuracy: {best['variant']} with {best['test_accuracy']:.1%} "
             f"({(best['test_accuracy'] - baseline) * 100:+.1f} points over the untrained {baseline:.1%}).",
             f"{closeness}, the fastest is {fastest['variant']} "
             f"({fastest['wall_time_s']:.0f} s against {best['wall_time_s']:.0f} s) and the one training the fewest "
             f"parameters is {smallest['variant']} ({smallest['trainable_params']:,}).",
             f"The cheapest run overall, {cheapest['variant']}, took {cheapest['wall_time_s']:.0f} s and reached "
             f"{cheapest['test_accuracy']:.1%}: " + _below_best(cheapest, best, correct, tolerance) + "."]
    return lines


def _below_best(row, best, correct: dict, tolerance: float) -> str:
    """How far `row` is below the best: the paired gap with its standard error and a tie called a tie where both
    have per-sentence scores, else the difference in points (a tie within `tolerance`)."""
    from course.gaps import gap_phrase, is_tie
    from ftkit.evaluate import paired_difference

    if row["variant"] == best["variant"]:
        return "it is the best"
    if row["variant"] in correct and best["variant"] in correct:
        gap, se = paired_difference(correct[row["variant"]], correct[best["variant"]])
        reading = "a tie with the best" if is_tie(gap, se) else "below the best"
        return f"{gap_phrase(gap, se, len(correct[row['variant']]))} against the best, {reading}"
    points = (best["test_accuracy"] - row["test_accuracy"]) * 100
    return f"{points:.1f} points below the best" + (" (a tie within the tolerance)" if points <= tolerance * 100 else "")


# ---------------------------------------------------------------------------------------------------
# Widget: the slanted triangular schedule's shape
# ---------------------------------------------------------------------------------------------------

def plot_slanted_schedule(cut_frac: float = 0.1, ratio: float = 32, total_steps: int = 1000,
                          max_lr: float = 1e-4) -> None:
    """Draw `ftkit.schedules.slanted_triangular` over `total_steps` steps for this `cut_frac` and `ratio`,
    with its floor max_lr / ratio dashed."""
    import pandas as pd

    from course import plots
    from ftkit.schedules import slanted_triangular

    rates = [slanted_triangular(t, total_steps, max_lr, cut_frac, ratio) for t in range(total_steps)]
    peak = rates.index(max(rates))
    frame = pd.DataFrame({"step": range(total_steps), "learning rate": rates})
    ax = plots.line_chart(frame, "step", "learning rate", xlabel="optimizer step", ylabel="learning rate (per step)",
                          title=f"Slanted triangular rate, cut_frac {cut_frac:.2f}, ratio {ratio:g}: "
                                f"peak at step {peak}, floor = peak / {ratio:g}")
    ax.axhline(max_lr / ratio, color="grey", linestyle="--", label=f"floor {max_lr / ratio:.2e}")
    ax.set_ylim(0, max_lr * 1.05)
    ax.legend(loc="upper right")


# ---------------------------------------------------------------------------------------------------
# Exercises
# ---------------------------------------------------------------------------------------------------

def check_slanted_triangular(slanted_rate) -> "Verdict":
    """Check a learner's `slanted_rate(step, total_steps, max_lr, cut_frac, ratio)` against
    `ftkit.schedules.slanted_triangular` at every step of three schedules. The learner's function gives one
    step's rate; the check compares whole schedules, so a difference is named by its step."""
    from course.exercises import Case, check
    from ftkit.schedules import slanted_triangular

    def every_step(total_steps, max_lr, cut_frac, ratio):
        return [slanted_rate(t, total_steps, max_lr, cut_frac, ratio) for t in range(total_steps)]

    every_step.__name__ = getattr(slanted_rate, "__name__", "your function")

    def cases():
        for total_steps, max_lr, cut_frac, ratio in [(100, 1.0, 0.1, 32), (40, 0.5, 0.25, 8), (30, 2.0, 0.5, 4)]:
            expected = [slanted_triangular(t, total_steps, max_lr, cut_frac, ratio) for t in range(total_steps)]
            yield Case((total_steps, max_lr, cut_frac, ratio), expected)

    return check("slanted triangular schedule (ftkit.schedules.slanted_triangular)", every_step, cases,
                 atol=1e-12, rtol=1e-6,
                 hint="value t is the rate at step t. It rises from max_lr / ratio at step 0 to max_lr at step "
                      "floor(cut_frac * total_steps), then falls back to max_lr / ratio at the last step, "
                      "total_steps - 1.")


def _tiny_distilbert(n_blocks: int) -> nn.Module:
    """A DistilBERT classifier with `n_blocks` blocks, on the meta device: its layer groups, no weights."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=32, max_position_embeddings=16, n_layers=n_blocks, n_heads=2, dim=8,
                              hidden_dim=16, num_labels=2)
    with torch.device("meta"):
        return DistilBertForSequenceClassification(config)


def check_discriminative_rates(discriminative_rates) -> "Verdict":
    """Check a learner's `discriminative_rates(n_groups, base_lr, factor)` (one rate per layer group, bottom
    to top) against the rates `ftkit.schedules.discriminative_param_groups` gives DistilBERT classifiers
    of 2, 4 and 6 blocks."""
    from course.exercises import Case, check
    from ftkit.schedules import discriminative_param_groups

    def cases():
        for n_blocks, base_lr, factor in [(6, 4e-3, 2.6), (2, 1.0, 3.0), (4, 0.1, 1.5)]:
            groups = discriminative_param_groups(_tiny_distilbert(n_blocks), base_lr, factor)
            yield Case((len(groups), base_lr, factor), [g["lr"] for g in groups])

    return check("discriminative learning rates (ftkit.schedules.discriminative_param_groups)",
                 discriminative_rates, cases, atol=1e-12, rtol=1e-6,
                 hint="value 0 is the embeddings, the last value the head. The head gets base_lr, and each "
                      "group below gets the rate of the group above it divided by factor.")


def check_importance_mask(keep_top_scores) -> "Verdict":
    """Check a learner's `keep_top_scores(scores, n_keep)` against `ftkit.transfer.top_fraction_masks` on
    fresh scores whose tensors have very different scales, so that keeping a share of every tensor, rather
    than the highest scores of all tensors together, picks different entries."""
    import torch

    from course.exercises import Case, check, fresh_generator
    from ftkit.transfer import top_fraction_masks

    def cases():
        g = fresh_generator(303)
        shapes = {"embeddings.weight": ((10, 4), 0.1), "block 0.weight": ((6, 6), 1.0), "block 0.bias": ((6,), 5.0),
                  "block 1.weight": ((3, 5), 2.0)}
        for n_keep in (7, 20, 1, 40):
            scores = {name: scale * torch.rand(shape, generator=g) for name, (shape, scale) in shapes.items()}
            expected = top_fraction_masks(scores, n_keep)
            yield Case(({name: s.clone() for name, s in scores.items()}, n_keep), expected)

    return check("importance mask (ftkit.transfer.top_fraction_masks)", keep_top_scores, cases,
                 hint="rank all entries of all tensors together, keep the n_keep highest, and give each tensor "
                      "a True/False mask of its own shape.")
