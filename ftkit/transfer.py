"""Transfer learning on a pretrained encoder: feature extraction, freezing by depth, ULMFiT-style
fine-tuning, and gradient-based parameter importance with masked training.

Every function takes a transformers sequence classifier (e.g. `DistilBertForSequenceClassification`)
whose layer groups `ftkit.schedules.layer_groups` finds: embeddings, blocks 0 .. L-1, head.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from ftkit.batching import seeded_loader
from ftkit.evaluate import evaluation_mode
from ftkit.params import count_parameters
from ftkit.precision import model_device, to_device
from ftkit.schedules import (discriminative_param_groups, gradual_unfreezing, layer_groups,
                             slanted_triangular_scheduler, unfreezing_stages)
from ftkit.train import TrainResult, model_loss, train


# ---------------------------------------------------------------------------------------------------
# Freezing
# ---------------------------------------------------------------------------------------------------

def freeze_all_but_top(model: nn.Module, k: int) -> int:
    """Freeze the pretrained encoder except its top `k` blocks; the head always trains.

    k = 0 trains the head only (feature extraction); k = L (the number of blocks) trains the blocks and
    the head but not the embeddings; `k="all"` (or any k > L) trains everything. Returns the number of
    trainable parameters.
    """
    groups = layer_groups(model)
    n_blocks = len(groups) - 2
    if k == "all" or (isinstance(k, int) and k > n_blocks):
        model.requires_grad_(True)
        return count_parameters(model).trainable
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a number of blocks 0 .. {n_blocks}, or 'all', got {k!r}.")
    gradual_unfreezing(model, k)  # the head plus the top k blocks
    return count_parameters(model).trainable


# ---------------------------------------------------------------------------------------------------
# Feature extraction
# ---------------------------------------------------------------------------------------------------

def encoder_features(model: nn.Module, loader: Iterable) -> dict[str, np.ndarray]:
    """Run the frozen encoder once over `loader` and keep what the classifiers need (float32 arrays on the
    CPU, for scikit-learn): `cls` (batch, hidden), the first token's final hidden state, which the model's
    own head reads; `mean` (batch, hidden), the mean of the final hidden states over real tokens (the
    sentence embedding all-MiniLM-L6-v2 was trained to give); `labels` (batch,).
    """
    base = model.base_model
    cls, mean, labels = [], [], []
    with evaluation_mode(model) as device:
        for batch in loader:
            batch = to_device(batch, device)
            hidden = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            hidden = hidden.float()  # autocast may have computed it in 16 bits; numpy has no bf16
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            cls.append(hidden[:, 0].cpu())
            mean.append(((hidden * mask).sum(1) / mask.sum(1)).cpu())
            labels.append(batch["labels"].cpu())
    return {"cls": torch.cat(cls).numpy(), "mean": torch.cat(mean).numpy(), "labels": torch.cat(labels).numpy()}


def logistic_regression_accuracy(train: dict, test: dict, key: str = "mean", C: float = 1.0,
                                 seed: int = 0) -> tuple[float, object]:
    """Fit scikit-learn's logistic regression on `train[key]` features, return (test accuracy 0..1, model)."""
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(train[key], train["labels"])
    return float(classifier.score(test[key], test["labels"])), classifier


def distilbert_head(model: nn.Module, cls: torch.Tensor) -> torch.Tensor:
    """The logits DistilBertForSequenceClassification computes from the first token's hidden state:
    pre_classifier, ReLU, dropout (active only in training mode), classifier."""
    hidden = torch.relu(model.pre_classifier(cls))
    return model.classifier(model.dropout(hidden))


def head_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    """Cross-entropy of the model's head on cached first-token features (no encoder pass)."""
    return nn.functional.cross_entropy(distilbert_head(model, batch["cls"]), batch["labels"])


class FeatureBatches:
    """Re-iterable shuffled batches of cached features (a DataLoader yields tuples; train wants dicts)."""

    def __init__(self, features: dict, batch_size: int, seed: int = 0):
        from torch.utils.data import TensorDataset

        data = TensorDataset(torch.from_numpy(features["cls"]), torch.from_numpy(features["labels"]))
        self.loader = seeded_loader(data, batch_size=batch_size, shuffle=True, seed=seed)

    def __iter__(self):
        return ({"cls": x, "labels": y} for x, y in self.loader)


# ---------------------------------------------------------------------------------------------------
# One fine-tuning run: plain, or with any of ULMFiT's three techniques
# ---------------------------------------------------------------------------------------------------

def _merge(parts: list[TrainResult]) -> TrainResult:
    """One TrainResult from consecutive stages: steps renumbered, times added, peak memory the maximum."""
    merged = TrainResult()
    for part in parts:
        merged.losses += [(merged.steps + step, loss) for step, loss in part.losses]
        merged.evaluations += [{**e, "step": merged.steps + e["step"]} for e in part.evaluations]
        merged.steps += part.steps
        merged.wall_time_s += part.wall_time_s
        merged.peak_memory_gb = max(merged.peak_memory_gb, part.peak_memory_gb)
    return merged


def fine_tune(model: nn.Module, batches: Iterable, *, steps: int, lr: float, slanted: bool = False,
              discriminative: float | None = None, gradual: bool = False, stage_steps: int | None = None,
              cut_frac: float = 0.1, ratio: float = 32, loss_fn: Callable = model_loss,
              evaluate: Callable[[nn.Module], dict] | None = None, desc: str = "fine-tuning") -> TrainResult:
    """Train the model's trainable parameters for `steps` steps with AdamW (no weight decay) at `lr`.

    - `slanted`: slanted triangular rates (ULMFiT) instead of a constant rate.
    - `discriminative`: a factor (ULMFiT: 2.6); the head trains at `lr`, each group below at the rate
      above divided by the factor.
    - `gradual`: gradual unfreezing, one more layer group from the top at each stage (the model's
      requires_grad flags are set here, whatever they were). The stages are len(groups) equal shares of
      the steps, or, with `stage_steps` (ULMFiT: one epoch), that many steps each and the rest for the last.
    `evaluate(model)` runs once, at the end. Returns the `TrainResult` (stages merged into one).
    """
    if gradual:
        model.requires_grad_(True)  # every group joins the optimizer; gradual_unfreezing sets the flags
    params = [p for p in model.parameters() if p.requires_grad]
    if discriminative:
        groups = discriminative_param_groups(model, lr, discriminative)
        wanted = {id(p) for p in params}
        groups = [{**g, "params": [p for p in g["params"] if id(p) in wanted]} for g in groups]
        groups = [g for g in groups if g["params"]]
    else:
        groups = [{"name": "all", "params": params, "lr": lr}]
    # weight_decay=0: decay would move entries whose gradient is masked (section 5) and frozen groups.
    optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=0.0, fused=True)
    scheduler = slanted_triangular_scheduler(optimizer, steps, cut_frac, ratio) if slanted else None
    if not gradual:
        return train(model, batches, steps=steps, optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn,
                     evaluate=evaluate, desc=desc)
    n_groups = len(layer_groups(model))
    parts = []
    for stage, steps_in_stage in enumerate(unfreezing_stages(steps, n_groups, stage_steps)):
        names = gradual_unfreezing(model, stage)
        last = stage == n_groups - 1
        parts.append(train(model, batches, steps=steps_in_stage, optimizer=optimizer, scheduler=scheduler,
                           loss_fn=loss_fn, evaluate=evaluate if last else None,
                           desc=f"{desc} [{stage + 1}/{n_groups}: +{names[-1]}]"))
    return _merge(parts)


# ---------------------------------------------------------------------------------------------------
# Gradient-based parameter importance
# ---------------------------------------------------------------------------------------------------

def importance_scores(model: nn.Module, batches: Iterable, n_batches: int,
                      loss_fn: Callable = model_loss) -> dict[str, dict[str, torch.Tensor]]:
    """Score every encoder weight on `n_batches` batches, summing per batch:
    `grad_x_weight`: |gradient x weight| (a first-order estimate of how much the loss changes if the weight
    were set to zero), and `grad`: |gradient| (how fast the loss changes as the weight moves).

    Returns {kind: {parameter name: scores shaped like the parameter}} for the base model's parameters
    (the new head is left out: it always trains), on the model's device. Costs `n_batches` forward and
    backward passes over the whole model plus two float32 scores per parameter.
    """
    model.requires_grad_(True)
    model.eval()  # no dropout: the scores describe the model itself
    device = model_device(model)
    named = [(f"{model.base_model_prefix}.{n}", p) for n, p in model.base_model.named_parameters()]
    scores = {kind: {n: torch.zeros_like(p) for n, p in named} for kind in ("grad_x_weight", "grad")}
    for i, batch in enumerate(batches):
        if i == n_batches:
            break
        model.zero_grad(set_to_none=True)
        # fp32, no autocast: the scores rank every weight against all others, and fp16 gradients without
        # loss scaling would round the smallest to zero (a few batches; no optimizer step to speed up).
        loss_fn(model, to_device(batch, device)).backward()
        for name, p in named:
            scores["grad"][name] += p.grad.abs()
            scores["grad_x_weight"][name] += (p.grad * p.detach()).abs()
    model.zero_grad(set_to_none=True)
    return scores


def top_fraction_masks(scores: dict[str, torch.Tensor], n_keep: int) -> dict[str, torch.Tensor]:
    """Boolean masks that keep the `n_keep` highest-scoring entries over all parameters together."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    if not 0 < n_keep <= flat.numel():
        raise ValueError(f"n_keep must be 1 .. {flat.numel()}, got {n_keep}.")
    threshold = torch.topk(flat, n_keep, sorted=False).values.min()
    masks = {name: s >= threshold for name, s in scores.items()}
    # Ties at the threshold could keep a few too many: drop the surplus, deterministically.
    surplus = sum(int(m.sum()) for m in masks.values()) - n_keep
    for name in masks:
        if surplus <= 0:
            break
        ties = ((scores[name] == threshold) & masks[name]).flatten().nonzero().flatten()[:surplus]
        masks[name].view(-1)[ties] = False
        surplus -= len(ties)
    return masks


def apply_gradient_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> list:
    """Train only the masked entries: every masked parameter's gradient is multiplied by its mask in a
    hook, so unmasked entries get a zero gradient (and, with no weight decay, AdamW leaves them exactly as
    they were). Parameters with no kept entry are frozen; the head keeps training. Returns the hook
    handles (call `.remove()` on each to undo)."""
    parameters = dict(model.named_parameters())
    unknown = set(masks) - set(parameters)
    if unknown:
        raise KeyError(f"Masks name parameters the model does not have: {sorted(unknown)[:3]}")
    handles = []
    for name, mask in masks.items():
        p = parameters[name]
        if not mask.any():
            p.requires_grad_(False)
            continue
        p.requires_grad_(True)
        keep = mask.to(device=p.device, dtype=p.dtype)  # the masks may come from another device (a CPU file)
        handles.append(p.register_hook(lambda grad, keep=keep: grad * keep))
    return handles


def mask_share_by_group(model: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, float]:
    """Share (0..1) of each layer group's parameters that a mask keeps."""
    by_id = {id(p): name for name, p in model.named_parameters()}
    shares = {}
    for group, params in layer_groups(model):
        kept = sum(int(masks[by_id[id(p)]].sum()) for p in params if by_id[id(p)] in masks)
        total = sum(p.numel() for p in params)
        shares[group] = kept / total
    return shares


# ---------------------------------------------------------------------------------------------------
# Predictions
# ---------------------------------------------------------------------------------------------------

def predict(model: nn.Module, tokenizer, texts: list[str], max_length: int = 64) -> list[int]:
    """The predicted label (0 or 1) of each text."""
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with evaluation_mode(model) as device:
        return model(**to_device(batch, device)).logits.argmax(-1).tolist()
