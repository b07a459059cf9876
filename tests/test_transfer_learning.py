"""course.transfer_learning: notebook 03's results rows and the sentences read off its table."""
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
