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


# ---------------------------------------------------------------------------------------------------
# Widget: perplexity against loss
# ---------------------------------------------------------------------------------------------------

def show_perplexity(loss: float, sentence_loss: float | None = None) -> None:
    """Print what a mean next-token loss (nats) means as a perplexity, exp(loss): the number of equally
    likely tokens the model is choosing between, and the (geometric-mean) probability it gives the true
    token. With `sentence_loss`, the same for a measured loss, for comparison."""
    import math

    perplexity = math.exp(loss)
    line = (f"mean loss {loss:.2f} nats -> perplexity exp({loss:.2f}) = {perplexity:,.2f}: as unsure as a fair "
            f"choice among {perplexity:,.1f} tokens; the true token gets p = 1/{perplexity:,.2f} = "
            f"{1 / perplexity:.4f} per prediction (geometric mean)")
    if sentence_loss is not None:
        line += f". The sentence above: loss {sentence_loss:.2f} nats, perplexity {math.exp(sentence_loss):,.2f}."
    print(line)


# ---------------------------------------------------------------------------------------------------
# Exercises
# ---------------------------------------------------------------------------------------------------

def check_next_token_loss(next_token_loss) -> "Verdict":
    """Check a learner's `next_token_loss(logits, input_ids)` against `ftkit.causal_lm.shifted_loss` on fresh
    logits whose position t leans toward the token at t + 1, so that a missing or reversed shift changes
    the loss by a lot, not by a rounding error."""
    from course.exercises import Case, check, fresh_generator
    from ftkit.causal_lm import shifted_loss

    def cases():
        g = fresh_generator(101)
        for batch, n, vocab in [(1, 6, 11), (2, 9, 17), (3, 5, 7)]:
            ids = torch.randint(vocab, (batch, n), generator=g)
            logits = torch.randn(batch, n, vocab, generator=g)
            logits[:, :-1].scatter_add_(-1, ids[:, 1:, None], torch.full((batch, n - 1, 1), 3.0))
            yield Case((logits.clone(), ids.clone()), float(shifted_loss(logits, ids)))

    return check("next-token loss (ftkit.causal_lm.shifted_loss)", next_token_loss, cases,
                 hint="the logits at position t predict the token at t + 1: drop the last position's logits and "
                      "the first token, then take the mean cross-entropy over what is left.")
