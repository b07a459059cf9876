"""ULMFiT's three techniques (Howard & Ruder 2018): slanted triangular learning rates, discriminative
learning rates per layer, gradual unfreezing. They need a model's layer groups, bottom to top.

The schedules are apart from the loop: they build a scheduler, optimizer parameter groups or
requires_grad flags that `ftkit.train.train` (or any loop) then uses.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def layer_groups(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """A transformer classifier's parameters in groups, bottom to top: `embeddings`, `block 0` ...
    `block L-1`, `head` (everything outside the pretrained base model: the new classifier).

    The blocks are the base model's first `nn.ModuleList`; base-model parameters outside it count as
    embeddings when their name says so, else (a final norm, say) they join the head.
    """
    base = getattr(model, "base_model", model)
    blocks = next((m for m in base.modules() if isinstance(m, nn.ModuleList)), None)
    if blocks is None or base is model:
        raise ValueError(f"{type(model).__name__} has no base model with a list of blocks: layer_groups "
                         "expects a transformers model with a task head (e.g. ...ForSequenceClassification).")
    in_blocks = {id(p) for p in blocks.parameters()}
    embeddings = [p for n, p in base.named_parameters() if id(p) not in in_blocks and "embed" in n]
    in_embeddings = {id(p) for p in embeddings}
    head = [p for p in model.parameters() if id(p) not in in_blocks and id(p) not in in_embeddings]
    groups = [("embeddings", embeddings)]
    groups += [(f"block {i}", list(block.parameters())) for i, block in enumerate(blocks)]
    groups.append(("head", head))
    return groups


def slanted_triangular(step: int, total_steps: int, max_lr: float, cut_frac: float = 0.1,
                       ratio: float = 32) -> float:
    """ULMFiT's slanted triangular learning rate for optimizer step `step` (0 .. total_steps - 1).

    The rate rises linearly from max_lr / ratio to max_lr over the first `cut_frac` of the steps (the peak
    is at step floor(cut_frac * total_steps)), then falls linearly back to max_lr / ratio at the last step:
    a short, steep warm-up to find a good region quickly, and a long decay to settle in it.
    """
    if not 0 <= step < total_steps:
        raise ValueError(f"step {step} is outside 0 .. {total_steps - 1} (total_steps={total_steps}).")
    cut = max(1, math.floor(total_steps * cut_frac))
    if step < cut:
        p = step / cut
    else:
        p = 1 - (step - cut) / max(1, total_steps - 1 - cut)
    return max_lr * (1 + p * (ratio - 1)) / ratio


def slanted_triangular_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, cut_frac: float = 0.1,
                                 ratio: float = 32) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR that multiplies each parameter group's own rate by the slanted triangular shape.

    With discriminative groups, every group follows the same shape at its own peak rate.
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: slanted_triangular(min(step, total_steps - 1), total_steps, 1.0, cut_frac, ratio))


def discriminative_param_groups(model: nn.Module, base_lr: float, factor: float = 2.6) -> list[dict]:
    """Optimizer parameter groups with ULMFiT's discriminative rates: the head at `base_lr`, and each group
    below it at the rate of the one above divided by `factor` (block L-1: base_lr / factor, ...,
    embeddings: base_lr / factor ** (L + 1)). Lower layers hold general features: they move least.

    Each dict holds `params`, `lr` and `name` (optimizers keep extra keys), ready for `torch.optim.AdamW`.
    """
    if factor <= 0:
        raise ValueError(f"factor must be positive (ULMFiT uses 2.6), got {factor}.")
    groups = layer_groups(model)
    top = len(groups) - 1
    return [{"name": name, "params": params, "lr": base_lr / factor ** (top - i)}
            for i, (name, params) in enumerate(groups)]


def gradual_unfreezing(model: nn.Module, stage: int) -> list[str]:
    """Stage `stage` of ULMFiT's gradual unfreezing: freeze everything, then unfreeze the top
    `stage + 1` layer groups (stage 0: the head; stage 1: the head and the last block; ...).

    Returns the names of the trainable groups, top first. Call it with stage 0, 1, 2, ... at the start
    of each epoch (or each equal share of the steps).
    """
    groups = layer_groups(model)
    if stage < 0:
        raise ValueError(f"stage must be 0 or more, got {stage}.")
    model.requires_grad_(False)
    unfrozen = groups[::-1][: stage + 1]
    for _, params in unfrozen:
        for p in params:
            p.requires_grad_(True)
    return [name for name, _ in unfrozen]


def unfreezing_stages(total_steps: int, n_groups: int, stage_steps: int | None = None) -> list[int]:
    """Steps per stage of gradual unfreezing, one stage per layer group, so the whole model trains only in
    the last stage.

    - `stage_steps=None`: `n_groups` nearly equal shares of `total_steps` (a short run's compromise).
    - `stage_steps=n`: ULMFiT's own recipe with n = one epoch of batches. Each group joins `n` steps after
      the one above it, and the last stage (all groups) gets the rest of `total_steps`.
    """
    if stage_steps is not None:
        joined = stage_steps * (n_groups - 1)
        if stage_steps < 1 or total_steps <= joined:
            raise ValueError(f"{total_steps} steps cannot give {n_groups - 1} stages {stage_steps} steps each and the "
                             f"last stage at least one: ask for more than {joined} steps, or fewer per stage.")
        return [stage_steps] * (n_groups - 1) + [total_steps - joined]
    if total_steps < n_groups:
        raise ValueError(f"{total_steps} steps cannot give each of {n_groups} unfreezing stages a step.")
    base, extra = divmod(total_steps, n_groups)
    return [base + (1 if i < extra else 0) for i in range(n_groups)]
