"""One device and dtype policy for everything that runs a model.

Weights that train stay in fp32 (the master copy); the matrix multiplies run in the policy's compute
dtype under autocast:

| device                                   | compute dtype | loss scaling |
|------------------------------------------|---------------|--------------|
| CUDA, compute capability 8.0+ (A100, L4, H100) | bf16     | no           |
| CUDA below 8.0 (T4, V100)                 | fp16          | yes: fp16's small range underflows small gradients to zero |
| CPU                                       | fp32          | no: bf16 on a CPU without native bf16 is many times slower |

4-bit loading dequantizes to the same compute dtype, and trl's configs get the same switches.
Library functions read the device from the model they are given (`model_device`); notebooks read the
policy from their run configuration (`cfg.precision`).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Precision:
    """Where a model runs and in which dtype its matrix multiplies are computed."""

    device: str
    compute_dtype: torch.dtype

    def __post_init__(self) -> None:
        if self.compute_dtype not in (torch.float32, torch.bfloat16, torch.float16):
            raise ValueError(f"compute_dtype must be torch.float32, torch.bfloat16 or torch.float16, "
                             f"not {self.compute_dtype}.")
        if torch.device(self.device).type == "cpu" and self.compute_dtype == torch.float16:
            raise ValueError("fp16 compute on a CPU is not supported; use torch.float32 (or bfloat16) there.")

    @property
    def device_type(self) -> str:
        return torch.device(self.device).type

    @property
    def scales_loss(self) -> bool:
        """fp16 needs its loss scaled up before backward so that small gradients do not underflow."""
        return self.compute_dtype == torch.float16

    @property
    def dtype_name(self) -> str:
        return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.compute_dtype]

    def autocast(self):
        """A context in which matrix multiplies run in the compute dtype (a no-op for fp32)."""
        if self.compute_dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.compute_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler that is active only where the policy scales the loss (fp16)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.scales_loss)

    def trl_kwargs(self) -> dict:
        """The precision switches of a transformers/trl `TrainingArguments`-style config.

        trl defaults to `bf16=True`; `use_cpu=True` alone leaves it on, so both are always set.
        """
        return {"bf16": self.compute_dtype == torch.bfloat16, "fp16": self.compute_dtype == torch.float16,
                "use_cpu": self.device_type == "cpu"}

    def four_bit_config(self, double_quant: bool = True, quant_type: str = "nf4"):
        """The QLoRA loading recipe (NF4, double quantization) with this policy's compute dtype."""
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                                  bnb_4bit_use_double_quant=double_quant, bnb_4bit_compute_dtype=self.compute_dtype)


def default_device() -> str:
    """Where models run unless told otherwise: `cuda` when a GPU is present, else `cpu`."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def precision_for(device: str | torch.device) -> Precision:
    """The course's policy for `device`: bf16 on Ampere or newer, fp16 on older GPUs, fp32 on a CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return Precision(str(device), torch.bfloat16 if major >= 8 else torch.float16)
    return Precision(str(device), torch.float32)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter: where its inputs must go."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        raise ValueError(f"{type(model).__name__} has no parameters, so it has no device to send inputs to.") from None


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of a model's first floating-point parameter (a 4-bit model's packed uint8 weights are skipped)."""
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if dtype is None:
        raise ValueError(f"{type(model).__name__} has no floating-point parameters, so it has no dtype to follow.")
    return dtype


def master_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype for new trainable weights beside frozen weights of `dtype`: fp32, or `dtype` where it is wider.

    A bf16, fp16 or 4-bit base still gets fp32 trainable weights (the master copy: an update far smaller
    than the weight would round away in 16 bits); an fp64 base keeps fp64.
    """
    return torch.promote_types(dtype, torch.float32)


def to_device(batch: dict, device: str | torch.device) -> dict:
    """The batch with every tensor moved to `device` (other values, such as lists of strings, unchanged)."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
