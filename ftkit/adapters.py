"""Bottleneck adapters from scratch (Houlsby et al. 2019): small trainable modules inside a frozen model.

An adapter maps a sublayer's output h (..., hidden) to h + up(act(down(h))): a down-projection to a
`bottleneck` of a few dimensions, a nonlinearity, an up-projection back, and a residual connection. The
up-projection starts at zero, so a freshly inserted adapter is the identity and the model computes
exactly what it computed before; training then moves it away only as far as the task needs.
Houlsby's placement puts one after the attention sublayer and one after the feed-forward sublayer of
every block, before they are added back into the residual stream. (peft has no bottleneck adapter;
AdapterHub's `adapters` package pins an old transformers, so the course writes its own.)
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ftkit.precision import master_dtype, model_device, model_dtype

# The sublayer names per architecture: attention and feed-forward of each block.
DEFAULT_TARGETS = {
    "llama": ("self_attn", "mlp"),
    "distilbert": ("attention", "ffn"),
}


class BottleneckAdapter(nn.Module):
    """h -> h + up(act(down(h))), with `up` zero-initialised: the identity until it trains.

    Parameters: 2 * hidden * bottleneck + bottleneck + hidden (two weights and their biases).
    """

    def __init__(self, hidden: int, bottleneck: int, activation: type[nn.Module] = nn.GELU):
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.activation = activation()
        self.up = nn.Linear(bottleneck, hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # The adapter computes in its own dtype (fp32 beside a half-precision model) and its update joins the
        # residual stream in the stream's dtype; both casts are no-ops when the two agree.
        update = self.up(self.activation(self.down(hidden_states.to(self.down.weight.dtype))))
        return hidden_states + update.to(hidden_states.dtype)


class WithAdapter(nn.Module):
    """A sublayer followed by an adapter on its output (the first element when it returns a tuple)."""

    def __init__(self, sublayer: nn.Module, adapter: BottleneckAdapter):
        super().__init__()
        self.sublayer = sublayer
        self.adapter = adapter

    def forward(self, *args, **kwargs):
        out = self.sublayer(*args, **kwargs)
        if isinstance(out, tuple):
            return (self.adapter(out[0]), *out[1:])
        return self.adapter(out)


def adapter_parameter_count(hidden: int, bottleneck: int) -> int:
    """Parameters of one adapter: down (hidden x bottleneck + bottleneck) and up (bottleneck x hidden + hidden)."""
    return 2 * hidden * bottleneck + bottleneck + hidden


def add_adapters(model: nn.Module, bottleneck: int, targets: Sequence[str] | None = None,
                 train_also: Sequence[str] = ()) -> list[str]:
    """Freeze `model`, wrap every sublayer whose name ends in one of `targets` with a fresh adapter.

    `targets` defaults to the attention and feed-forward sublayers of the model's architecture
    (`DEFAULT_TARGETS`). Parameters whose names contain one of `train_also` (e.g. a new classification
    head, `classifier`) stay trainable too. Returns the wrapped module names. Changes `model` in place.
    The adapters go on the model's device, in fp32 (fp64 beside an fp64 model): the master copy of what trains.
    """
    model_type = getattr(model.config, "model_type", None)
    if targets is None:
        if model_type not in DEFAULT_TARGETS:
            raise ValueError(f"No default adapter targets for model type {model_type!r}; pass targets=(...).")
        targets = DEFAULT_TARGETS[model_type]
    hidden = getattr(model.config, "hidden_size", None) or getattr(model.config, "dim")
    model.requires_grad_(False)
    for name, param in model.named_parameters():
        if any(part in name for part in train_also):
            param.requires_grad_(True)
    names = [name for name, module in model.named_modules()
             if name.split(".")[-1] in targets and not isinstance(module, WithAdapter)]
    if not names:
        raise ValueError(f"No module of the model is named one of {tuple(targets)}.")
    device, dtype = model_device(model), master_dtype(model_dtype(model))
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        adapter = BottleneckAdapter(hidden, bottleneck).to(device=device, dtype=dtype)
        setattr(parent, child, WithAdapter(getattr(parent, child), adapter))
    return names


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters' weights by name: what one task's adapters amount to (swap with `load_state_dict`)."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if ".adapter." in name}
