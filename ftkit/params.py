"""Counting parameters honestly: trainable, total and share, for plain, PEFT and 4-bit models.

Two traps this module avoids, both seen in published notebooks:
- bitsandbytes stores a 4-bit weight packed two to a byte, as a uint8 tensor with half as many
  elements: a naive `numel()` sum counts half of every quantized matrix.
- peft's `modules_to_save` keeps the original module and a trainable copy; counting both counts the
  head twice. `count_parameters` counts the model as it computes: the copy, not the idle original.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ParameterCount:
    """Trainable and total parameter counts; `share` is trainable / total (0..1)."""

    trainable: int
    total: int

    @property
    def share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (f"trainable params: {self.trainable:,} || all params: {self.total:,} "
                f"|| trainable%: {100 * self.share:.4f}")


def is_packed_4bit(param: torch.Tensor) -> bool:
    """True for a bitsandbytes 4-bit weight (`Params4bit`), stored packed as uint8."""
    return type(param).__name__ == "Params4bit" and param.dtype == torch.uint8


def true_numel(param: torch.Tensor) -> int:
    """How many model parameters a tensor holds: a packed 4-bit uint8 holds two per byte."""
    if is_packed_4bit(param):
        quant_state = getattr(param, "quant_state", None)
        if quant_state is not None:
            return int(torch.Size(quant_state.shape).numel())
        return 2 * param.numel()
    return param.numel()


def _named_parameters_as_computed(model: nn.Module):
    """Named parameters, skipping the frozen originals that peft keeps beside `modules_to_save` copies."""
    for name, param in model.named_parameters():
        if ".original_module." in f".{name}":
            continue
        yield name, param


def count_parameters(model: nn.Module) -> ParameterCount:
    """Trainable and total parameters of `model`, correct for 4-bit weights and `modules_to_save`.

    Tied weights count once (`named_parameters` yields a shared tensor once).
    """
    trainable = total = 0
    for _, param in _named_parameters_as_computed(model):
        n = true_numel(param)
        total += n
        if param.requires_grad:
            trainable += n
    return ParameterCount(trainable=trainable, total=total)


def naive_count(model: nn.Module) -> ParameterCount:
    """What a plain `numel()` sum over every parameter says: the figure older tools printed.

    Wrong twice on a quantized PEFT model: half of each 4-bit matrix, and the head counted twice.
    """
    params = list(model.parameters())
    return ParameterCount(trainable=sum(p.numel() for p in params if p.requires_grad),
                          total=sum(p.numel() for p in params))


def parameter_table(model: nn.Module, depth: int = 2):
    """One row per module prefix (module names cut after `depth` parts): trainable, total, share of model.

    Returns a pandas DataFrame sorted by total, largest first.
    """
    import pandas as pd

    rows: dict[str, list[int]] = {}
    for name, param in _named_parameters_as_computed(model):
        prefix = ".".join(name.split(".")[:depth])
        counts = rows.setdefault(prefix, [0, 0])
        n = true_numel(param)
        counts[1] += n
        if param.requires_grad:
            counts[0] += n
    table = pd.DataFrame([(k, t, n) for k, (t, n) in rows.items()], columns=["module", "trainable", "total"])
    table["share_of_model"] = table["total"] / table["total"].sum()
    return table.sort_values("total", ascending=False, ignore_index=True)


def lora_parameter_count(d: int, k: int, r: int) -> int:
    """Parameters LoRA trains for one d x k weight: B is d x r and A is r x k, so r * (d + k)."""
    if min(d, k, r) < 1:
        raise ValueError(f"d, k and r must be positive, got d={d}, k={k}, r={r}.")
    return r * (d + k)


def simulate_4bit(model: nn.Module, keep: tuple[str, ...] = ("lm_head",)) -> nn.Module:
    """Replace every `nn.Linear` weight of a meta model (except names in `keep`) by a packed 4-bit one.

    This is the storage that bitsandbytes' 4-bit loading produces (a uint8 `Params4bit` with half the
    elements), without any real weights: use it to count a 7B model's 4-bit form on the meta device.
    """
    import bitsandbytes as bnb

    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and not any(part in name for part in keep):
            if module.weight.device.type != "meta":
                raise ValueError("simulate_4bit only works on meta models; quantize real ones with "
                                 "BitsAndBytesConfig(load_in_4bit=True).")
            packed = torch.empty(((module.weight.numel() + 1) // 2, 1), dtype=torch.uint8, device="meta")
            module.weight = bnb.nn.Params4bit(packed, requires_grad=False, quant_type="nf4")
    return model
