"""Why a low rank suffices: singular values, the best low-rank approximation, and how much it keeps.

LoRA trains a rank-r update B A instead of a full d x k update. Whether that loses anything depends on
how fast a matrix's singular values decay: by Eckart-Young, the truncated SVD is the best rank-r
approximation, and its relative error ||M - M_r||_F / ||M||_F follows from the singular values beyond r.
`weight_update` takes the update full fine-tuning made (W_tuned - W0), the matrix to analyse.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


def singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """The singular values of a 2-D tensor, largest first (computed in float64)."""
    return torch.linalg.svdvals(matrix.detach().double())


def low_rank_approximation(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    """The best rank-`rank` approximation of `matrix` (Eckart-Young: truncated SVD)."""
    u, s, vh = torch.linalg.svd(matrix.detach().double(), full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vh[:rank]


def reconstruction_error(matrix: torch.Tensor, ranks: Iterable[int]):
    """Relative error ||M - M_r||_F / ||M||_F of the best rank-r approximation, for each rank.

    Returns a DataFrame with columns `rank`, `relative_error` (0..1) and `energy` (the share of the
    squared Frobenius norm the top `rank` singular values hold, 0..1). Computed from the singular
    values: ||M - M_r||_F^2 is the sum of the squared singular values beyond r.
    """
    import pandas as pd

    squared = singular_values(matrix) ** 2
    total = squared.sum()
    rows = []
    for rank in ranks:
        kept = squared[:rank].sum()
        rows.append({"rank": rank, "relative_error": float(((total - kept) / total).sqrt()),
                     "energy": float(kept / total)})
    return pd.DataFrame(rows)


def weight_update(tuned: nn.Module, base: nn.Module, name: str) -> torch.Tensor:
    """dW = W_tuned - W0 for the parameter called `name` (e.g. `...layer.5.attention.q_lin.weight`)."""
    return (dict(tuned.named_parameters())[name] - dict(base.named_parameters())[name]).detach()
