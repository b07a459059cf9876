"""Whether the course's models fit in the memory free now, before any weight is read.

`available_memory_gb` reads the free GPU memory or the available RAM, capped by the course's
`FTKIT_MEMORY_GB` setting (rehearse on a large machine what a 16 GB T4 does); `check_fits_for_loading`
refuses a model whose weights would not fit (`course.models.load_causal_lm` calls it, and
`course.models.fits_for_loading` asks the same question of a course model's name). It reads model folders,
never course names, so it sits below `course.models`. The training-memory estimates themselves are
`ftkit.memory`.
"""
from __future__ import annotations

from ftkit.memory import GIB, model_weights_gb
from ftkit.precision import default_device


def available_memory_gb(device: str = "cpu") -> float:
    """Free memory on `device` now, in GiB: free GPU memory for `cuda`, available RAM for `cpu`.

    `FTKIT_MEMORY_GB`, when set, caps it: rehearse on a large machine what a smaller one (a 16 GB T4) does.
    """
    import os

    free = _free_memory_gb(device)
    cap = os.environ.get("FTKIT_MEMORY_GB")
    return min(free, float(cap)) if cap else free


def _free_memory_gb(device: str) -> float:
    import torch

    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return free / GIB
    import psutil

    return psutil.virtual_memory().available / GIB


def weights_gb(where, dtype) -> tuple[int, float]:
    """`(parameters, GiB)` of a decoder's weights in `dtype`, counted on the meta device from its config."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(where)
    with torch.device("meta"):
        n_params = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    return n_params, n_params * torch.finfo(dtype).bits / 8 / GIB


def check_fits_for_loading(where, dtype, device: str | None = None) -> None:
    """Raise a MemoryError that says how much is needed when a model's weights will not fit on `device`
    (default: the GPU when there is one, else the CPU).

    Counts the parameters on the meta device from the model's config (no weights are read).
    """
    import torch

    n_params, needed = weights_gb(where, dtype)
    device = torch.device(device or default_device()).type
    free = available_memory_gb(device)
    if needed > free:
        raise MemoryError(
            f"{where} has {n_params:,} parameters: {needed:.1f} GiB in {dtype}, but only {free:.1f} GiB "
            f"is free on {device}. Load it in 4-bit (quantization_config=BitsAndBytesConfig(load_in_4bit=True), "
            f"about {model_weights_gb(n_params, 'nf4'):.1f} GiB), use a smaller model, or a larger machine.")
