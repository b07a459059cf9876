"""Self-supervised fine-tuning of a causal language model: the objective by hand, and the helpers that
continued pre-training needs (held-out blocks, perplexity before and after, forgetting, LoRA vs full).

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


def objective_table(tokenizer, input_ids: torch.Tensor, max_rows: int = 12):
    """A DataFrame of what the model sees at each position and the token it must predict there."""
    import pandas as pd

    ids = input_ids.reshape(-1).tolist()
    rows = [{"position": t, "model sees (last token)": tokenizer.decode([ids[t]]),
             "label: next token": tokenizer.decode([ids[t + 1]]), "label id": ids[t + 1]}
            for t in range(min(len(ids) - 1, max_rows))]
    return pd.DataFrame(rows)


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


def sample_blocks(blocks: torch.Tensor, n: int | None, seed: int = 0) -> torch.Tensor:
    """`n` blocks drawn at random (seeded) from `blocks` (all of them when `n` is None or larger)."""
    if n is None or n >= len(blocks):
        return blocks
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed))
    return blocks[order[:n]]


def perplexity_change(before: float, after: float) -> float:
    """Relative change of perplexity in percent (negative: the model got better)."""
    return 100.0 * (after - before) / before


def forgetting_table(before: dict[str, float], after: dict[str, float]):
    """Perplexity per text domain before and after training, with the relative change (%)."""
    import pandas as pd

    rows = [{"text": name, "perplexity before": before[name], "perplexity after": after[name],
             "change %": perplexity_change(before[name], after[name])} for name in before]
    return pd.DataFrame(rows).round(2)


def describe_change(name: str, before: float, after: float) -> str:
    """A sentence that states a perplexity change in words, computed from the numbers."""
    change = perplexity_change(before, after)
    direction = "fell" if change < 0 else "rose"
    return f"Perplexity on {name} {direction} from {before:.2f} to {after:.2f} ({change:+.1f}%)."


def with_lora(model, r: int = 16, alpha: int = 32, dropout: float = 0.0,
              target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj",
                                                 "gate_proj", "up_proj", "down_proj")):
    """Wrap a causal LM with peft LoRA adapters (all attention and MLP projections by default).

    Only the adapters train; the base weights are frozen. Returns the `PeftModel`.
    """
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                        task_type="CAUSAL_LM")
    return get_peft_model(model, config)
