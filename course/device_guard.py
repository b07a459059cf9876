"""A guard for GPU runs: every module's parameters, buffers and tensor inputs must be on the required device.

`make gpu-smoke` sets `FTKIT_REQUIRE_DEVICE=cuda`; `course.config.setup` then installs this guard in the
notebook's kernel, and the first forward pass of a module left on the CPU (or fed a CPU batch) stops the
notebook with the module's name. Meta tensors (shapes without storage, used for counting) are allowed.
"""
from __future__ import annotations

import torch
from torch import nn


class WrongDevice(RuntimeError):
    """A module ran with a parameter, buffer or input off the device the run requires."""


def _off_device(tensors, required: str) -> list[str]:
    return [f"{name} on {t.device}" for name, t in tensors
            if torch.is_tensor(t) and t.device.type not in (required, "meta")]


def check_module_call(module: nn.Module, args: tuple, required: str) -> None:
    """Raise `WrongDevice` when `module`'s own tensors or its positional tensor arguments are not on `required`.

    Global hooks see positional arguments only; a model called with keywords passes its batch on to inner
    modules positionally (the embedding gets `input_ids`), so a batch left behind is still caught.
    """
    own = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
    inputs = [(f"argument {i}", a) for i, a in enumerate(args)]
    wrong = _off_device(own, required) + _off_device(inputs, required)
    if wrong:
        raise WrongDevice(f"{type(module).__name__} ran with {', '.join(wrong[:4])}, but this run requires "
                          f"{required}: move the model (`model.to(cfg.device)`) and its batches to {required}.")


def install(required: str):
    """Check every module call from now on; returns the hook's handle (`.remove()` undoes it)."""
    if required == "cuda" and not torch.cuda.is_available():
        raise WrongDevice("FTKIT_REQUIRE_DEVICE=cuda, but this machine has no CUDA GPU: run `make gpu-smoke` on one.")

    def hook(module, args):
        check_module_call(module, args, required)

    return nn.modules.module.register_module_forward_pre_hook(hook)
