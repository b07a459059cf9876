"""The causal language model's objective by hand, and the relative change of perplexity that continued
pre-training is measured by.

The objective: at every position t the model predicts token t+1, so the labels are the input ids shifted
one place to the left, and the loss is the mean cross-entropy of those predictions. transformers does
the shift inside the model when `labels` equal `input_ids`; `shifted_loss` does it by hand.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100  # cross_entropy skips targets with this value (padding, prompts)


def shift_for_next_token(input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) for next-token prediction: inputs drop the last token, targets drop the first.

    Shapes: (..., n) -> (..., n-1) each; `targets[..., t]` is the token that follows `inputs[..., t]`.
    """
    return input_ids[..., :-1], input_ids[..., 1:]


def shifted_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) from logits (batch, n, vocab) and labels (batch, n).

    The prediction at position t is scored against label t+1; labels equal to -100 are skipped. This is
    what `model(input_ids, labels=labels).loss` computes.
    """
    predictions = logits[:, :-1, :].reshape(-1, logits.shape[-1]).float()
    targets = labels[:, 1:].reshape(-1)
    return F.cross_entropy(predictions, targets, ignore_index=IGNORE_INDEX)


def one_prediction_loss(logits: torch.Tensor, input_ids: torch.Tensor, position: int) -> dict:
    """The loss of one prediction by hand: -log(softmax(logits at `position`)[the next token]).

    Works on the first sequence of the batch. Returns the probability the model gave the true next token,
    its loss in nats, and the model's own top guess.
    """
    probabilities = torch.softmax(logits[0, position].float(), dim=-1)
    target = int(input_ids[0, position + 1])
    p = float(probabilities[target])
    return {"position": position, "target_id": target, "probability": p, "loss": -math.log(p),
            "top_guess_id": int(probabilities.argmax())}


def perplexity_change(before: float, after: float) -> float:
    """Relative change of perplexity in percent (negative: the model got better)."""
    return 100.0 * (after - before) / before
