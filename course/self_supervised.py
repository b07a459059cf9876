"""Notebook 01's helpers around `ftkit.causal_lm`: the objective shown as a table, held-out text cleaned of
long runs it shares with the training text, held-out blocks drawn for the budget, perplexity before and after
as a table and in words, a change in loss read against its paired standard error (forgetting), the fields a
perplexity record keeps to be paired later, and the LoRA wrapper that compares LoRA with full fine-tuning.
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


def _shared_span_marks(words: list[str], spans: set, n: int) -> list[bool]:
    """For each word, whether it lies inside an `n`-word span found in `spans`."""
    marks = [False] * len(words)
    for i in range(len(words) - n + 1):
        if tuple(words[i:i + n]) in spans:
            marks[i:i + n] = [True] * n
    return marks


def _spans(texts, n: int) -> set:
    return {tuple(words[i:i + n]) for text in texts for words in [text.split()] for i in range(len(words) - n + 1)}


def shared_span_share(train_texts, test_texts, n: int = 12) -> float:
    """The share of `test_texts`' words (split on whitespace) that lie inside a run of `n` words that also
    occurs, word for word, in `train_texts`: text a model could have memorised rather than learned."""
    spans = _spans(train_texts, n)
    marks = [m for text in test_texts for m in _shared_span_marks(text.split(), spans, n)]
    return sum(marks) / max(1, len(marks))


def without_shared_spans(test_texts, train_texts, n: int = 12) -> list[str]:
    """`test_texts` with every paragraph (blank-line separated) that takes part in an `n`-word run shared with
    `train_texts` removed, repeated until none is left (joining paragraphs can make a new shared run)."""
    spans = _spans(train_texts, n)
    cleaned = []
    for text in test_texts:
        paragraphs = text.split("\n\n")
        while True:
            owner = [k for k, paragraph in enumerate(paragraphs) for _ in paragraph.split()]
            marks = _shared_span_marks("\n\n".join(paragraphs).split(), spans, n)
            shared = {owner[i] for i, marked in enumerate(marks) if marked}
            if not shared:
                break
            paragraphs = [p for k, p in enumerate(paragraphs) if k not in shared]
        cleaned.append("\n\n".join(paragraphs))
    return cleaned


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


def describe_loss_change(name: str, before: list[float], after: list[float]) -> str:
    """A sentence on a change in held-out loss, block by block (`ftkit.evaluate.block_losses` of the same
    blocks before and after): the mean change per token with its paired standard error, and whether it is
    a rise, a fall or within two standard errors (no change this many blocks can tell from chance)."""
    from course.gaps import gap_phrase, is_tie
    from ftkit.evaluate import paired_difference

    change, se = paired_difference(after, before)
    reading = ("within two standard errors: no change this many blocks can tell from chance" if is_tie(change, se)
               else "a rise beyond two standard errors" if change > 0 else "a fall beyond two standard errors")
    return f"{name}: loss {gap_phrase(change, se, len(before), scale=1, unit='nats per token', digits=3)}, {reading}"


def paired_loss_fields(after: list[float], before: list[float]) -> dict:
    """What a perplexity record keeps so that runs on the same blocks pair up later (`course.results.record`):
    the per-block losses after training as its `scores`, in nats per token (a perplexity is the exponential
    of their mean), and their paired change from `before` with its standard error."""
    from ftkit.evaluate import paired_difference

    change, se = paired_difference(after, before)
    return {"scores": after, "scores_unit": "nats per token", "loss_change": change, "loss_change_se": se}


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
