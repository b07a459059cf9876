"""LoRA from scratch: a frozen weight plus a trainable low-rank update, h = W0 x + (alpha / r) B A x.

For a d x k weight W0, LoRA learns B (d x r) and A (r x k) with r much smaller than d and k, so it trains
r * (d + k) numbers instead of d * k. B starts at zero, so the adapted model starts exactly equal to the
pretrained one; A starts random (Kaiming-uniform, as in peft). After training, W0 + (alpha / r) B A is
one ordinary matrix again (`merge_lora`): inference costs nothing extra.

The layer (`LoRALinear`) stands apart from its injection (`add_lora`, `lora_layers`, `merge_lora`), as in
peft's tuners. `add_lora` follows peft's naming: a target matches a module whose full name equals it or
ends with `.<target>`, and the layer keeps its parameters as `lora_A` / `lora_B`. `copy_from_peft` loads
a peft model's weights into one built here; the tests check that both then give the same outputs.
Why a low rank suffices (singular values, low-rank reconstruction) is in `ftkit.low_rank`.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from ftkit.precision import master_dtype


# ---------------------------------------------------------------------------------------------------
# The layer
# ---------------------------------------------------------------------------------------------------

class LoRALinear(nn.Module):
    """A frozen `nn.Linear` (d_out x d_in) plus a trainable rank-`r` update scaled by `alpha / r`.

    `lora_A` is r x d_in (Kaiming-uniform), `lora_B` is d_out x r (zeros): at initialisation the
    layer computes exactly what `base` computes. They live on the base weight's device in fp32 (fp64 beside
    an fp64 base): a half-precision base still trains full-precision adapters, as peft's do.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"The rank r must be a whole number of at least 1, got {r!r}: use e.g. r=8.")
        if r > min(base.in_features, base.out_features):
            # B A would then have rank min(d, k) anyway, with more parameters than the full update (peft refuses too).
            raise ValueError(f"Rank {r} is above min(d_out, d_in) = {min(base.in_features, base.out_features)} of this "
                             f"{base.out_features} x {base.in_features} layer: choose r <= "
                             f"{min(base.in_features, base.out_features)}, or train the layer fully instead.")
        self.base = base
        self.base.requires_grad_(False)
        self.r, self.alpha, self.scale = r, alpha, alpha / r
        weight = base.weight
        dtype = master_dtype(weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=dtype, device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=dtype, device=weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # peft's default initialisation of A
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.base(x)
        # Two thin matrix products (k -> r -> d): the d x k product B A is never formed while training. The
        # input meets the adapter in the adapter's dtype and the update joins the base output in its dtype
        # (both no-ops when everything is fp32; under autocast the products run in the compute dtype).
        update = self.dropout(x.to(self.lora_A.dtype)) @ self.lora_A.T @ self.lora_B.T
        return base + (update * self.scale).to(base.dtype)

    def delta_weight(self) -> torch.Tensor:
        """The update this adapter adds to the weight: (alpha / r) B A, d_out x d_in."""
        return (self.lora_B @ self.lora_A) * self.scale

    def merged(self) -> nn.Linear:
        """A plain `nn.Linear` computing the same function: weight W0 + (alpha / r) B A."""
        linear = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                           dtype=self.base.weight.dtype, device=self.base.weight.device)
        with torch.no_grad():
            linear.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                linear.bias.copy_(self.base.bias)
        return linear

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, scale={self.scale:g}"


# ---------------------------------------------------------------------------------------------------
# Injection: wrapping a model's linear modules
# ---------------------------------------------------------------------------------------------------

def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith(f".{target}")


def linear_module_names(model: nn.Module) -> list[str]:
    """The distinct last parts of the names of `model`'s `nn.Linear` modules (`q_lin`, `lin1`, ...)."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, nn.Linear)})


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def add_lora(model: nn.Module, target_modules: Iterable[str], r: int = 8, alpha: float = 16,
             dropout: float = 0.0, trainable_modules: Iterable[str] = ()) -> nn.Module:
    """Freeze `model` and wrap every `nn.Linear` whose name matches a target in a `LoRALinear`, in place.

    A target matches a module named exactly so or ending in `.<target>` (`"q_lin"` matches
    `distilbert.transformer.layer.0.attention.q_lin`). Modules named in `trainable_modules` (e.g. a new
    classification head) stay trainable. A target that matches no linear module is an error that lists
    the names there are. Returns the model.
    """
    targets = list(target_modules)
    if not targets:
        raise ValueError("target_modules is empty: name at least one linear module, e.g. ['q_lin', 'v_lin'].")
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    unmatched = [t for t in targets if not any(_matches(name, t) for name in linears)]
    if unmatched:
        raise ValueError(f"target_modules {unmatched} match no linear module of {type(model).__name__}. "
                         f"Its linear modules are named: {', '.join(linear_module_names(model))}.")
    keep = list(trainable_modules)
    names = [name for name, _ in model.named_modules()]
    unmatched_keep = [t for t in keep if not any(_matches(name, t) for name in names)]
    if unmatched_keep:
        raise ValueError(f"trainable_modules {unmatched_keep} match no module of {type(model).__name__}, so they would "
                         f"stay frozen. Name modules that exist, e.g. the head: {', '.join(names[-3:])}.")
    model.requires_grad_(False)
    for name, linear in linears.items():
        if any(_matches(name, t) for t in targets):
            _set_module(model, name, LoRALinear(linear, r, alpha, dropout))
    for name, module in model.named_modules():
        if any(_matches(name, t) for t in keep):
            module.requires_grad_(True)
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """Every `LoRALinear` in `model`, by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace each `LoRALinear` by the plain `nn.Linear` it computes (W0 + (alpha/r) B A), in place."""
    for name, layer in lora_layers(model).items():
        _set_module(model, name, layer.merged())
    return model


# ---------------------------------------------------------------------------------------------------
# Counting: what LoRA will train, before building it
# ---------------------------------------------------------------------------------------------------

def lora_trainable_count(model: nn.Module, target_modules: Iterable[str], r: int,
                         trainable_modules: Iterable[str] = ()) -> int:
    """Parameters LoRA would train on `model`, without building it: r * (d_in + d_out) per targeted
    linear module, plus every parameter of the modules in `trainable_modules` (a head)."""
    targets, keep = list(target_modules), list(trainable_modules)
    count = sum(r * (m.in_features + m.out_features) for name, m in model.named_modules()
                if isinstance(m, nn.Linear) and any(_matches(name, t) for t in targets))
    count += sum(p.numel() for name, m in model.named_modules() if any(_matches(name, t) for t in keep)
                 for p in m.parameters())
    return count


# ---------------------------------------------------------------------------------------------------
# peft side by side: copying a peft model's weights across
# ---------------------------------------------------------------------------------------------------

def copy_from_peft(peft_model: nn.Module, model: nn.Module, adapter_name: str = "default") -> nn.Module:
    """Load every weight of `peft_model` (base, LoRA A and B, trained head copy) into `model`, which
    `add_lora` built with the same targets and rank. Strict: any name that does not pair up is an error."""
    state = {}
    for key, value in peft_model.state_dict().items():
        if ".original_module." in key:
            continue
        key = (key.removeprefix("base_model.model.").replace(".base_layer.", ".base.")
               .replace(f".lora_A.{adapter_name}.weight", ".lora_A").replace(f".lora_B.{adapter_name}.weight", ".lora_B")
               .replace(f".modules_to_save.{adapter_name}.", "."))
        state[key] = value
    model.load_state_dict(state, strict=True)
    return model
