"""Notebook 00 (start here): the table its GPU slider shows, full fine-tuning, LoRA and QLoRA side by side.

The estimates themselves are `ftkit.memory`.
"""
from __future__ import annotations

from ftkit.memory import METHODS, fits, training_memory


def fit_table(n_params: int, gpu_memory_gb: float, lora_share: float, activations_gb: float = 0.0):
    """Full fine-tuning, LoRA and QLoRA of an `n_params` model side by side, and whether each fits a GPU.

    `lora_share` is the adapter's share of the model's parameters (count it on a real PEFT model with
    `ftkit.params.count_parameters`); the same share is assumed at every size. Returns a DataFrame (GiB).
    """
    import pandas as pd

    rows = []
    for method in METHODS:
        trainable = None if method == "full" else round(n_params * lora_share)
        estimate = training_memory(n_params, method, trainable_params=trainable, activations_gb=activations_gb)
        rows.append({**estimate.as_row(), "fits": fits(estimate, gpu_memory_gb)})
    return pd.DataFrame(rows).set_index("method").round(2)
