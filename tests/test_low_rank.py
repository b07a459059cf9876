"""The low-rank maths (`ftkit.low_rank`): exact reconstruction at the true rank, and the update it analyses."""
import pytest
import torch

from ftkit import low_rank


def test_reconstruction_error_is_exact_for_a_low_rank_matrix():
    torch.manual_seed(0)
    rank_three = torch.randn(20, 3) @ torch.randn(3, 15)
    table = low_rank.reconstruction_error(rank_three, [1, 3, 15])
    assert table.relative_error.iloc[0] > 0.1
    assert table.relative_error.iloc[1] < 1e-6 and table.energy.iloc[1] == pytest.approx(1.0)
    approx = low_rank.low_rank_approximation(rank_three, 3)
    assert torch.allclose(approx.float(), rank_three, atol=1e-4)


def test_weight_update_is_the_difference_of_one_named_weight():
    base = torch.nn.Sequential(torch.nn.Linear(3, 2))
    tuned = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with torch.no_grad():
        tuned[0].weight.copy_(base[0].weight + torch.arange(6.0).reshape(2, 3))
    update = low_rank.weight_update(tuned, base, "0.weight")
    assert torch.allclose(update, torch.arange(6.0).reshape(2, 3)) and not update.requires_grad
