"""Notebook 01's helpers around `ftkit.causal_lm`: the objective shown as a table, held-out blocks drawn for
the budget, perplexity before and after as a table and in words (forgetting), and the LoRA wrapper that
compares LoRA with full fine-tuning.
"""
from __future__ import annotations

import torch

from ftkit.causal_lm import perplexity_change


def objective_table(tokenizer, input_ids: torch.Tensor, max_rows: int = 12):
    """A DataFrame of what the model sees at each position and the token it must predict there."""
    import pandas as pd

    ids = input_ids.reshape(-1).tolist()
    rows = [{"position": t, "model sees (last token)": tokenizer.decode([ids[t]]),
             "label: next token": tokenizer.decode([ids[t + 1]]), "label id": ids[t + 1]}
            for t in range(min(len(ids) - 1, max_rows))]
    return pd.DataFrame(rows)


def sample_blocks(blocks: torch.Tensor, n: int | None, seed: int = 0) -> torch.Tensor:
    """`n` blocks drawn at random (seeded) from `blocks` (all of them when `n` is None or larger)."""
    if n is None or n >= len(blocks):
        return blocks
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed))
    return blocks[order[:n]]


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
