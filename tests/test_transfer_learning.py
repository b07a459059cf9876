"""course.transfer_learning: notebook 03's results rows, the sentences read off its table, its widget and exercise checks."""
import pandas as pd
from torch import nn

from course.transfer_learning import conclusions, result_row
from ftkit.train import TrainResult


def test_a_row_counts_the_trainable_parameters_unless_told():
    model = nn.Linear(4, 2)
    model.bias.requires_grad_(False)
    result = TrainResult(wall_time_s=3.0, peak_memory_gb=0.5)
    row = result_row("weights only", model, result, 0.75, note="x")
    assert row == {"variant": "weights only", "trainable_params": 8, "wall_time_s": 3.0, "peak_memory_gb": 0.5,
                   "test_accuracy": 0.75, "note": "x"}
    assert result_row("probe", model, result, 0.75, trainable=3)["trainable_params"] == 3


def test_conclusions_name_the_best_the_fastest_near_it_and_the_cheapest():
    table = pd.DataFrame([
        {"variant": "full", "trainable_params": 1000, "wall_time_s": 100.0, "test_accuracy": 0.90},
        {"variant": "top 2", "trainable_params": 300, "wall_time_s": 40.0, "test_accuracy": 0.895},
        {"variant": "head", "trainable_params": 10, "wall_time_s": 5.0, "test_accuracy": 0.70},
    ])
    best, near, cheapest = conclusions(table, baseline=0.5)
    assert best.startswith("Best accuracy: full with 90.0% (+40.0 points")
    assert "the fastest is top 2 (40 s against 100 s)" in near and "fewest parameters is top 2 (300)" in near
    assert cheapest.startswith("The cheapest run overall, head, took 5 s and reached 70.0%: 20.0 points")


def test_with_per_sentence_scores_near_the_best_means_tied_with_it():
    table = pd.DataFrame([
        {"variant": "full", "trainable_params": 1000, "wall_time_s": 100.0, "test_accuracy": 0.75},
        {"variant": "top 2", "trainable_params": 300, "wall_time_s": 40.0, "test_accuracy": 0.70},
        {"variant": "head", "trainable_params": 10, "wall_time_s": 5.0, "test_accuracy": 0.25},
    ])
    # 20 sentences: top 2 misses one more than full (a tie, 5 points apart); head misses ten more (clear).
    correct = {"full": [1] * 15 + [0] * 5, "top 2": [1] * 14 + [0] * 6, "head": [1] * 5 + [0] * 15}
    _, near, cheapest = conclusions(table, baseline=0.5, correct=correct)
    assert near.startswith("Tied with it (a paired gap within two standard errors), the fastest is top 2")
    assert cheapest.endswith("-50.0 ± 11.5 points over n=20 (-4.4 SE) against the best, below the best.")
    _, near_by_points, _ = conclusions(table, baseline=0.5)
    assert "the fastest is full" in near_by_points  # without scores, 5 points is more than the 1-point tolerance


def test_the_schedule_widget_draws_the_course_schedule():
    import matplotlib.pyplot as plt

    from course.transfer_learning import plot_slanted_schedule
    from ftkit.schedules import slanted_triangular

    plot_slanted_schedule(cut_frac=0.25, ratio=8, total_steps=40, max_lr=1.0)
    ax = plt.gca()
    line = ax.get_lines()[0]
    assert list(line.get_ydata()) == [slanted_triangular(t, 40, 1.0, 0.25, 8) for t in range(40)]
    assert "peak at step 10" in ax.get_title() and ax.get_xlabel() == "optimizer step"
    assert "per step" in ax.get_ylabel()
    plt.close("all")


def test_a_schedule_without_the_ratio_floor_is_caught():
    import math

    from course.transfer_learning import check_slanted_triangular

    def slanted_rate(step, total_steps, max_lr, cut_frac, ratio):
        cut = math.floor(cut_frac * total_steps)
        return max_lr * (step / cut if step < cut else 1 - (step - cut) / (total_steps - 1 - cut))

    verdict = check_slanted_triangular(slanted_rate)
    assert not verdict.correct and "in value 0 of 100: should be 0.03125 but is 0" in verdict.message


def test_a_schedule_with_warm_up_and_decay_swapped_is_caught():
    import math

    from course.transfer_learning import check_slanted_triangular

    def slanted_rate(step, total_steps, max_lr, cut_frac, ratio):
        cut = math.floor((1 - cut_frac) * total_steps)  # a long rise and a short fall
        p = step / cut if step < cut else 1 - (step - cut) / (total_steps - 1 - cut)
        return max_lr * (1 + p * (ratio - 1)) / ratio

    verdict = check_slanted_triangular(slanted_rate)
    assert not verdict.correct and "in value 1 of 100" in verdict.message


def test_discriminative_rates_multiplied_going_down_are_caught():
    from course.transfer_learning import check_discriminative_rates

    verdict = check_discriminative_rates(lambda n, base_lr, factor: [base_lr * factor ** (n - 1 - i) for i in range(n)])
    assert not verdict.correct and "in value 0 of 8: should be" in verdict.message


def test_discriminative_rates_upside_down_are_caught():
    from course.transfer_learning import check_discriminative_rates

    verdict = check_discriminative_rates(lambda n, base_lr, factor: [base_lr / factor ** i for i in range(n)])
    assert not verdict.correct and "in value 0 of 8" in verdict.message


def _keep(scores, n_keep, largest=True):
    import torch

    flat = torch.cat([s.flatten() for s in scores.values()])
    threshold = torch.topk(flat, n_keep, largest=largest).values
    if largest:
        return {name: s >= threshold.min() for name, s in scores.items()}
    return {name: s <= threshold.max() for name, s in scores.items()}


def test_a_mask_that_keeps_the_smallest_scores_is_caught():
    from course.transfer_learning import check_importance_mask

    verdict = check_importance_mask(lambda scores, n_keep: _keep(scores, n_keep, largest=False))
    assert not verdict.correct and "element" in verdict.message and "should be" in verdict.message


def test_a_mask_that_keeps_the_same_share_of_every_tensor_is_caught():
    from course.transfer_learning import check_importance_mask

    def keep_top_scores(scores, n_keep):
        share = n_keep / sum(s.numel() for s in scores.values())
        return {name: _keep({name: s}, max(1, round(share * s.numel())))[name] for name, s in scores.items()}

    verdict = check_importance_mask(keep_top_scores)
    assert not verdict.correct and "element" in verdict.message


def test_a_mask_that_keeps_n_in_every_tensor_is_caught():
    from course.transfer_learning import check_importance_mask

    verdict = check_importance_mask(lambda scores, n_keep: {name: _keep({name: s}, min(n_keep, s.numel()))[name]
                                                            for name, s in scores.items()})
    assert not verdict.correct and "element" in verdict.message
