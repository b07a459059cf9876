"""Notebook 06's sweeps around `ftkit.soft_prompts`: a fresh model trained at each of a few learning rates,
as a table (`course.prompt_rate_sweep` runs them on validation sentences).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ftkit.soft_prompts import train_verbalizer


def learning_rate_sweep(make_model, learning_rates: Sequence[float], train_loader, eval_loader,
                        token_ids: Sequence[int], *, steps: int, method: str):
    """Train a fresh `make_model()` at each learning rate for `steps` steps; return a DataFrame of
    method, learning rate, final training loss (mean of the last three steps) and accuracy.

    `train_loader` may be a function returning a new loader: then every rate trains on the same batches
    (one shuffled loader passed to every run goes on to the next epoch's order each time)."""
    import pandas as pd

    rows = []
    for lr in learning_rates:
        torch.manual_seed(0)
        model = make_model()
        batches = train_loader() if callable(train_loader) else train_loader
        try:
            result = train_verbalizer(model, batches, eval_loader, token_ids, steps=steps, lr=lr,
                                      desc=f"{method} lr {lr:g}")
            last = [loss for _, loss in result.losses[-3:]]
            rows.append({"method": method, "learning_rate": lr, "final_loss": sum(last) / len(last),
                         "accuracy": result.evaluations[-1]["accuracy"]})
        except FloatingPointError:  # a rate so high that the loss diverged: that is a result too
            rows.append({"method": method, "learning_rate": lr, "final_loss": float("nan"), "accuracy": float("nan")})
    return pd.DataFrame(rows)
