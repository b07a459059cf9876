"""Evaluation the notebooks share: accuracy, perplexity, ROUGE, and side-by-side generations."""
from __future__ import annotations

import math
import statistics
from contextlib import contextmanager
from typing import Sequence

import torch

from ftkit.precision import model_device, precision_for, to_device


@contextmanager
def evaluation_mode(model):
    """Inside the block: eval mode (no dropout), no gradients, and the autocast of the device's precision
    policy (`ftkit.precision`: bf16 or fp16 on a GPU, plain fp32 on a CPU), so that a model is evaluated,
    and a PPO rollout scored, in the precision it trains in; after it, the model's own mode again.

    Yields the device of the model's parameters, where batches must go.
    """
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), precision_for(device).autocast():
            yield device
    finally:
        model.train(was_training)


def classification_correct(model, loader) -> list[int]:
    """1 or 0 per example of a `classification_loader`, in its order: is the arg-max logit the label?
    Two models' lists over the same loader give a paired comparison (`paired_difference`)."""
    with evaluation_mode(model) as device:
        correct = []
        for batch in loader:
            batch = to_device(batch, device)
            labels = batch.pop("labels")
            correct += (model(**batch).logits.argmax(-1) == labels).int().tolist()
    return correct


def classification_accuracy(model, loader) -> float:
    """Share of examples (0..1) whose arg-max logit equals the label, over a `classification_loader`."""
    correct = classification_correct(model, loader)
    return sum(correct) / len(correct)


def perplexity(model, loader) -> float:
    """exp(mean next-token cross-entropy) over every predicted token of a `block_loader`.

    Each batch's loss is weighted by its number of predicted tokens, so the result does not depend on
    the batch size.
    """
    with evaluation_mode(model) as device:
        total_loss = total_tokens = 0.0
        for batch in loader:
            batch = to_device(batch, device)
            loss = model(**batch).loss.item()
            predicted = (batch["labels"][:, 1:] != -100).sum().item()
            total_loss += loss * predicted
            total_tokens += predicted
    return math.exp(total_loss / total_tokens)


def block_losses(model, loader) -> list[float]:
    """The mean next-token cross-entropy (nats) of each block of a `block_loader`, in order. Two models'
    lists on the same blocks pair up (`paired_difference`): the paired standard error of a change in loss.
    Every block has the same number of predicted tokens, so their mean is the log of `perplexity`."""
    from ftkit.causal_lm import shifted_loss

    with evaluation_mode(model) as device:
        losses = []
        for batch in loader:
            batch = to_device(batch, device)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
            losses += [shifted_loss(logits[i:i + 1], batch["labels"][i:i + 1]).item() for i in range(len(logits))]
    return losses


def rouge_per_example(predictions: list[str], references: list[str] | list[list[str]]) -> list[dict[str, float]]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 (0..1, Porter stemming) of each prediction, in order: the per-example
    scores that `paired_difference` compares between two models on the same examples.

    Each prediction has one reference, or a list of them (DialogSum's test set has three per dialogue):
    with several, each prediction scores its best match per metric, as `rouge_score`'s `score_multi` does.
    """
    from rouge_score import rouge_scorer

    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references: they must pair up.")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score_multi([ref] if isinstance(ref, str) else list(ref), pred)
              for pred, ref in zip(predictions, references)]
    return [{name: s[name].fmeasure for name in ("rouge1", "rouge2", "rougeL")} for s in scores]


def rouge(predictions: list[str], references: list[str] | list[list[str]]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F1 (0..1) over the examples, as the summarization papers report
    (`rouge_per_example`, averaged)."""
    scores = rouge_per_example(predictions, references)
    return {name: sum(s[name] for s in scores) / len(scores) for name in ("rouge1", "rouge2", "rougeL")}


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 40, chat: bool = False) -> list[str]:
    """Greedy continuations of `prompts` (deterministic), decoded without the prompt.

    `chat=True` wraps each prompt as a user message in the tokenizer's chat template.
    """
    with evaluation_mode(model) as device:
        outputs = []
        for prompt in prompts:
            if chat:
                inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                       return_tensors="pt", return_dict=True)
            else:
                inputs = tokenizer(prompt, return_tensors="pt")
            inputs = to_device(inputs, device)
            ids = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            outputs.append(tokenizer.decode(ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip())
    return outputs


def side_by_side(prompts: list[str], **columns: list[str]):
    """A DataFrame with one row per prompt and one column per model's output (e.g. before=..., after=...)."""
    import pandas as pd

    return pd.DataFrame({"prompt": prompts, **columns})


def paired_difference(after: Sequence[float], before: Sequence[float]) -> tuple[float, float]:
    """Mean of `after - before` over the same examples, and its standard error from the per-example
    differences. Pairing removes how much the examples differ from each other (an easy sentence is easy for
    both), so this is the yardstick for "better than before" on one shared test set. For 0/1 correctness it
    gives the accuracy gain and its standard error."""
    if len(after) != len(before):
        raise ValueError(f"Both must score the same examples in the same order: got {len(after)} and {len(before)}.")
    if len(after) < 2:
        raise ValueError("A standard error needs at least two examples.")
    differences = [a - b for a, b in zip(after, before)]
    return statistics.fmean(differences), statistics.stdev(differences) / math.sqrt(len(differences))
