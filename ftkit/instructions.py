"""Instruction data for supervised fine-tuning: a template, response-only labels, batched generation and
per-task scoring.

Every example is a dict with `task`, `instruction`, `context` (may be empty) and `output`. The template
puts instruction and optional context in the user's turn; the output is the assistant's turn. The model's
chat template (ChatML for SmolLM2) wraps both, so the model sees exactly the format it was trained with.

The loss covers only the response: labels are -100 over the prompt (system and user turns and the
assistant header), so the model is never trained to write the user's instructions.
"""
from __future__ import annotations

import random
import re

import torch

from ftkit.batching import left_padded_batch, right_padded_batch, seeded_loader
from ftkit.causal_lm import IGNORE_INDEX
from ftkit.evaluate import evaluation_mode
from ftkit.precision import to_device


def render_prompt(instruction: str, context: str = "") -> str:
    """The instruction template for the user's turn: the instruction, then the context if there is one."""
    if not context:
        return f"### Instruction\n{instruction}"
    return f"### Instruction\n{instruction}\n\n### Context\n{context}"


def to_messages(example: dict) -> tuple[list[dict], list[dict]]:
    """(prompt messages, completion messages) in the conversational form trl's SFTTrainer takes."""
    prompt = [{"role": "user", "content": render_prompt(example["instruction"], example["context"])}]
    return prompt, [{"role": "assistant", "content": example["output"]}]


# ---------------------------------------------------------------------------------------------------------
# Tokenising with response-only labels.

def tokenize_example(tokenizer, example: dict, max_length: int | None = None) -> dict[str, list[int]]:
    """`input_ids` of the whole chat (prompt + response) and `labels` with -100 over the prompt.

    The prompt is the chat template applied to the user's turn with the assistant header
    (`add_generation_prompt=True`); everything after it (the response and its end-of-turn tokens) is
    labelled. This mirrors trl's prompt-completion tokenisation.
    """
    prompt, completion = to_messages(example)
    prompt_ids = _ids(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True))
    full_ids = _ids(tokenizer.apply_chat_template(prompt + completion, tokenize=True))
    n_prompt = _common_prefix(prompt_ids, full_ids)
    labels = [IGNORE_INDEX] * n_prompt + full_ids[n_prompt:]
    if max_length is not None:
        full_ids, labels = full_ids[:max_length], labels[:max_length]
    return {"input_ids": full_ids, "labels": labels}


def _ids(encoded) -> list[int]:
    """apply_chat_template returns a list, or a BatchEncoding in newer transformers: the ids either way."""
    if hasattr(encoded, "keys") and "input_ids" in encoded:
        encoded = encoded["input_ids"]
    return list(encoded)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def collate(rows: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad tokenised rows into a batch; padding gets attention 0 and label -100. On the CPU, as a
    DataLoader's collate function: `ftkit.train.train` moves it to the model's device."""
    return right_padded_batch([r["input_ids"] for r in rows], pad_token_id, [r["labels"] for r in rows])


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int = 0, megabatch: int = 50) -> list[list[int]]:
    """Batches of indices whose rows have similar lengths, in a seeded random order.

    Shuffle, cut into chunks of `megabatch` batches, sort each chunk by length and cut it into batches, then
    shuffle the batches: transformers' `group_by_length` does the same. A batch pads to its longest row, so
    mixing 80-token and 300-token examples at random pays for 300 tokens in most rows; grouping does not.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    size = megabatch * batch_size
    batches = []
    for start in range(0, len(order), size):
        chunk = sorted(order[start:start + size], key=lambda i: -lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def instruction_loader(examples: list[dict], tokenizer, *, batch_size: int, max_length: int = 512,
                       shuffle: bool = True, seed: int = 0, group_by_length: bool = False):
    """A DataLoader of prompt-masked batches (`input_ids`, `attention_mask`, `labels`) for `ftkit.train`.

    `group_by_length=True` batches rows of similar length (`length_grouped_batches`; the order is fixed by
    `seed`), which saves the padding compute when tasks of very different lengths are mixed.
    """
    from torch.utils.data import DataLoader

    rows = [tokenize_example(tokenizer, e, max_length) for e in examples]
    pad = lambda batch: collate(batch, tokenizer.pad_token_id)  # noqa: E731
    if group_by_length:
        batches = length_grouped_batches([len(r["input_ids"]) for r in rows], batch_size, seed)
        return DataLoader(rows, batch_sampler=batches, collate_fn=pad)
    return seeded_loader(rows, batch_size=batch_size, shuffle=shuffle, seed=seed, collate_fn=pad)


def trl_dataset(examples: list[dict]):
    """The examples as a conversational prompt-completion `datasets.Dataset`, the form SFTTrainer takes."""
    from datasets import Dataset

    pairs = [to_messages(e) for e in examples]
    return Dataset.from_list([{"prompt": p, "completion": c} for p, c in pairs])


# ---------------------------------------------------------------------------------------------------------
# Generation and per-task evaluation.

def generate_responses(model, tokenizer, examples: list[dict], max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy responses to the examples' prompts, in batches (left-padded so all prompts end together)."""
    with evaluation_mode(model) as device:
        outputs = []
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            prompts = [_ids(tokenizer.apply_chat_template(to_messages(e)[0], add_generation_prompt=True, tokenize=True))
                       for e in chunk]
            batch = to_device(left_padded_batch(prompts, tokenizer.pad_token_id), device)
            generated = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                                       pad_token_id=tokenizer.pad_token_id)
            width = batch["input_ids"].shape[1]
            outputs += [tokenizer.decode(g[width:], skip_special_tokens=True).strip() for g in generated]
    return outputs


LIST_LINE = re.compile(r"^(\d+)\. \S.*$")


def _numbered_list(example: dict, text: str) -> bool:
    lines = text.split("\n")
    n_items = len(example["context"].split(", "))
    matches = [LIST_LINE.match(line) for line in lines]
    return len(lines) == n_items and all(matches) and [int(m.group(1)) for m in matches] == list(range(1, n_items + 1))


def _one_paragraph(example: dict, text: str) -> bool:
    return bool(text) and "\n\n" not in text


# task -> rule(example, stripped response) -> bool. A new task adds its rule here (or the caller's copy).
FORMAT_RULES = {
    "sentiment": lambda example, text: text in ("positive", "negative"),
    "starter": lambda example, text: text in example["options"],
    "numbered_list": _numbered_list,
    "qa": _one_paragraph,
    "summary": _one_paragraph,
}
# Tasks answered in free text, scored by ROUGE-L F1; every other task's answer is closed (exact match).
FREE_TEXT_TASKS = ("qa", "summary")


def follows_format(example: dict, prediction: str, rules: dict | None = None) -> bool:
    """Whether a response has the form its task asks for (not whether it is right), by the task's rule in
    `rules` (default `FORMAT_RULES`): sentiment: exactly `positive` or `negative`; starter: exactly one of the
    options; numbered_list: one `N. item` line per item, numbered from 1; qa and summary: a non-empty single
    paragraph."""
    rules = FORMAT_RULES if rules is None else rules
    if example["task"] not in rules:
        raise ValueError(f"No format rule for task {example['task']!r} (rules exist for {', '.join(rules)}): "
                         "add one, a function (example, response) -> bool, to the rules you pass.")
    return rules[example["task"]](example, prediction.strip())


def task_metric(task: str) -> str:
    """The quality metric of a task: exact match for closed answers, ROUGE-L F1 for free text
    (`FREE_TEXT_TASKS`)."""
    return "ROUGE-L" if task in FREE_TEXT_TASKS else "exact match"


def item_scores(examples: list[dict], predictions: list[str]) -> list[float]:
    """Each response's score under its task's metric (0..1), in order: 1 or 0 for exact match, ROUGE-L F1
    for free text. Two models' lists on the same examples pair up (`evaluate.paired_difference`)."""
    from ftkit.evaluate import rouge_per_example

    if len(examples) != len(predictions):
        raise ValueError(f"{len(predictions)} responses for {len(examples)} examples: they must pair up.")
    references = [e["output"] for e in examples]
    if task_metric(examples[0]["task"]) == "ROUGE-L":
        return [s["rougeL"] for s in rouge_per_example(predictions, references)]
    return [float(p.strip() == r) for p, r in zip(predictions, references)]


def score_task(examples: list[dict], predictions: list[str]) -> dict[str, float]:
    """{"score": the task's metric (0..1), the mean of `item_scores`; "format": share of responses in the
    required format (0..1)}."""
    scores = item_scores(examples, predictions)
    fmt = sum(follows_format(e, p) for e, p in zip(examples, predictions)) / len(examples)
    return {"score": sum(scores) / len(scores), "format": fmt}
