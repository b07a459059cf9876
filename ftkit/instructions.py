"""Instruction data for supervised fine-tuning: a template, a multi-task set built from the course's own
sources, response-only labels, batched generation and per-task evaluation.

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

from ftkit.causal_lm import IGNORE_INDEX
from ftkit.evaluate import evaluation_mode

TASKS = ("sentiment", "qa", "summary", "starter", "numbered_list")

SENTIMENT_INSTRUCTION = ("Is the sentiment of this movie review sentence positive or negative? "
                         "Answer with exactly one word: positive or negative.")
SUMMARY_INSTRUCTION = "Summarize the dialogue in one or two sentences."
STARTER_INSTRUCTION = ("Which of these conversation starters began the chat below? "
                       "Answer with the starter exactly as written.")
LIST_INSTRUCTION = "Rewrite the items as a numbered list: one item per line, as '1. item'."

# Items for the course's own format-following task (written for the course).
LIST_ITEMS = (
    "apples", "a red kite", "two pencils", "the blue notebook", "fresh bread", "a train ticket", "warm socks",
    "a bicycle pump", "green tea", "the garden hose", "a paper map", "batteries", "a wool hat", "olive oil",
    "the spare key", "a birthday card", "rice", "a torch", "sunscreen", "the red umbrella", "a phone charger",
    "onions", "a stapler", "coffee beans", "the old radio", "a tennis ball", "glue", "a road atlas", "lemons",
    "a tape measure", "the sketchbook", "honey", "a pair of gloves", "the bus timetable", "string",
    "a water bottle", "the chess set", "carrots", "a candle", "the recipe book", "a screwdriver", "oat milk",
    "a postcard", "the yellow scarf", "salt", "a hammer", "the dog's lead", "a deck of cards", "tomatoes",
    "the laptop stand", "a mug", "envelopes", "a rain jacket", "the library book", "peppers", "a ruler",
)


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
# Building the multi-task set. Each builder returns (train, test) lists of examples with disjoint sources.

def _take(rows: list, n: int, seed: int) -> list:
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    return rows[:n]


def sentiment_examples(n_train: int, n_test: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Movie-review sentences (Rotten Tomatoes snippets); held out: the sentiment data's own test split."""
    from course.data import load_sentiment

    movies = load_sentiment("movies", seed=seed)
    make = lambda row: {"task": "sentiment", "instruction": SENTIMENT_INSTRUCTION, "context": row["text"],  # noqa: E731
                        "output": "positive" if row["label"] == 1 else "negative"}
    return ([make(r) for r in movies["train"].shuffle(seed=seed).select(range(n_train))],
            [make(r) for r in movies["test"].select(range(n_test))])


def qa_examples(n_train: int, n_test: int, seed: int = 0, max_answer_words: int = 30) -> tuple[list[dict], list[dict]]:
    """Short questions and answers (ChatterBot corpus), split by question so that no question is in both."""
    from course.data import load_chatterbot_qa

    seen, rows = set(), []
    for row in load_chatterbot_qa():
        key = row["question"].lower()
        if key not in seen and 0 < len(row["answer"].split()) <= max_answer_words:
            seen.add(key)
            rows.append({"task": "qa", "instruction": row["question"], "context": "", "output": row["answer"]})
    rows = _take(rows, len(rows), seed)
    return rows[n_test:n_test + n_train], rows[:n_test]


def summary_examples(n_train: int, n_test: int) -> tuple[list[dict], list[dict]]:
    """The course's dialogue-summary set; held out: its test split."""
    from course.data import load_dialogue_summaries

    dialogues = load_dialogue_summaries()
    make = lambda row: {"task": "summary", "instruction": SUMMARY_INSTRUCTION, "context": row["dialogue"],  # noqa: E731
                        "output": row["summary"]}
    return ([make(r) for r in dialogues["train"].select(range(min(n_train, len(dialogues["train"]))))],
            [make(r) for r in dialogues["test"].select(range(min(n_test, len(dialogues["test"]))))])


# Words too common to tie a chat to its starter.
COMMON_WORDS = {"there", "would", "about", "could", "which", "their", "where", "thing", "things", "really",
                "think", "something", "what's", "while", "these", "those", "other", "every", "never", "today"}


def starter_examples(n_train: int, n_test: int, seed: int = 0, n_options: int = 3, n_turns: int = 4,
                     max_chars: int = 400) -> tuple[list[dict], list[dict]]:
    """Which conversation starter began a chat (Chit Chat Challenge): the chat's first turns and
    `n_options` starters to choose from. Only chats whose first turns share a content word with their
    starter are used, so the answer can be read from the text. Split by chat."""
    from course.data import load_chitchat

    chats = load_chitchat()
    starters = sorted({p for p in chats["prompt"] if p})
    rng = random.Random(seed)
    rows = []
    for chat in chats:
        starter = chat["prompt"]
        if not starter:
            continue
        words = {w for w in re.findall(r"[a-z]+", starter.lower()) if len(w) > 4} - COMMON_WORDS
        turns = [f"{s}: {t}" for s, t in zip(chat["speakers"][:n_turns], chat["turns"][:n_turns])]
        text = "\n".join(turns)[:max_chars]
        if not words & set(re.findall(r"[a-z]+", text.lower())):
            continue
        options = rng.sample([s for s in starters if s != starter], n_options - 1) + [starter]
        rng.shuffle(options)
        instruction = STARTER_INSTRUCTION + "\nOptions:\n" + "\n".join(f"- {o}" for o in options)
        rows.append({"task": "starter", "instruction": instruction, "context": text, "output": starter,
                     "options": options})
    rows = _take(rows, len(rows), seed)
    return rows[n_test:n_test + n_train], rows[:n_test]


def numbered_list_examples(n_train: int, n_test: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """The course's own format task: comma-separated items in, a numbered list out (one item per line)."""
    rng = random.Random(seed)
    seen, rows = set(), []
    while len(rows) < n_train + n_test:
        items = tuple(rng.sample(LIST_ITEMS, rng.randint(3, 5)))
        if items in seen:
            continue
        seen.add(items)
        rows.append({"task": "numbered_list", "instruction": LIST_INSTRUCTION, "context": ", ".join(items),
                     "output": "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))})
    return rows[n_test:], rows[:n_test]


def build_tasks(sizes: dict[str, tuple[int, int]], seed: int = 0) -> dict[str, dict[str, list[dict]]]:
    """The multi-task instruction set: {task: {"train": [...], "test": [...]}} for the tasks in `sizes`
    ({task: (n_train, n_test)})."""
    builders = {"sentiment": lambda a, b: sentiment_examples(a, b, seed), "qa": lambda a, b: qa_examples(a, b, seed),
                "summary": summary_examples, "starter": lambda a, b: starter_examples(a, b, seed),
                "numbered_list": lambda a, b: numbered_list_examples(a, b, seed)}
    unknown = set(sizes) - set(builders)
    if unknown:
        raise KeyError(f"Unknown tasks {sorted(unknown)}; known: {', '.join(TASKS)}.")
    out = {}
    for task, (n_train, n_test) in sizes.items():
        train, test = builders[task](n_train, n_test)
        out[task] = {"train": train, "test": test}
    return out


def mix(tasks: dict[str, dict[str, list[dict]]], split: str = "train", seed: int = 0) -> list[dict]:
    """All tasks' examples of one split, shuffled together (seeded)."""
    rows = [row for task in tasks.values() for row in task[split]]
    random.Random(seed).shuffle(rows)
    return rows


def split_sizes(tasks: dict[str, dict[str, list[dict]]]):
    """A DataFrame with the number of training and held-out examples per task."""
    import pandas as pd

    return pd.DataFrame([{"task": t, "train": len(s["train"]), "held out": len(s["test"])} for t, s in tasks.items()])


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
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_token_id)
    labels = torch.full((len(rows), width), IGNORE_INDEX)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.tensor(row["input_ids"])
        labels[i, :n] = torch.tensor(row["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


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
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(rows, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=pad)


def show_mask(tokenizer, row: dict[str, list[int]]) -> str:
    """The tokens of one tokenised example, the ones the loss ignores in [brackets]."""
    pieces = []
    for token, label in zip(row["input_ids"], row["labels"]):
        text = tokenizer.decode([token])
        pieces.append(f"[{text}]" if label == IGNORE_INDEX else text)
    return "".join(pieces)


def trl_dataset(examples: list[dict]):
    """The examples as a conversational prompt-completion `datasets.Dataset`, the form SFTTrainer takes."""
    from datasets import Dataset

    pairs = [to_messages(e) for e in examples]
    return Dataset.from_list([{"prompt": p, "completion": c} for p, c in pairs])


# ---------------------------------------------------------------------------------------------------------
# Generation and per-task evaluation.

def left_pad(prompts: list[list[int]], pad_token_id: int, device: str | torch.device) -> dict[str, torch.Tensor]:
    """Token-id lists as a left-padded batch on `device`: `input_ids` and `attention_mask`, both
    (len(prompts), longest prompt). A decoder continues from the last position, so every prompt ends there."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long, device=device)
        mask[i, width - len(p):] = 1
    return {"input_ids": ids, "attention_mask": mask}


def generate_responses(model, tokenizer, examples: list[dict], max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy responses to the examples' prompts, in batches (left-padded so all prompts end together)."""
    with evaluation_mode(model) as device:
        outputs = []
        for start in range(0, len(examples), batch_size):
            chunk = examples[start:start + batch_size]
            prompts = [_ids(tokenizer.apply_chat_template(to_messages(e)[0], add_generation_prompt=True, tokenize=True))
                       for e in chunk]
            batch = left_pad(prompts, tokenizer.pad_token_id, device)
            generated = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                                       pad_token_id=tokenizer.pad_token_id)
            width = batch["input_ids"].shape[1]
            outputs += [tokenizer.decode(g[width:], skip_special_tokens=True).strip() for g in generated]
    return outputs


LIST_LINE = re.compile(r"^(\d+)\. \S.*$")


def follows_format(example: dict, prediction: str) -> bool:
    """Whether a response has the form its task asks for (not whether it is right).

    sentiment: exactly `positive` or `negative`; starter: exactly one of the options; numbered_list: one
    `N. item` line per item, numbered from 1; qa and summary: a non-empty single paragraph.
    """
    task, text = example["task"], prediction.strip()
    if task == "sentiment":
        return text in ("positive", "negative")
    if task == "starter":
        return text in example["options"]
    if task == "numbered_list":
        lines = text.split("\n")
        n_items = len(example["context"].split(", "))
        matches = [LIST_LINE.match(line) for line in lines]
        return (len(lines) == n_items and all(matches)
                and [int(m.group(1)) for m in matches] == list(range(1, n_items + 1)))
    return bool(text) and "\n\n" not in text


def task_metric(task: str) -> str:
    """The quality metric of a task: exact match for closed answers, ROUGE-L F1 for free text."""
    return "ROUGE-L" if task in ("qa", "summary") else "exact match"


def score_task(examples: list[dict], predictions: list[str]) -> dict[str, float]:
    """{"score": the task's metric (0..1), "format": share of responses in the required format (0..1)}."""
    from ftkit.evaluate import rouge

    task = examples[0]["task"]
    references = [e["output"] for e in examples]
    if task_metric(task) == "ROUGE-L":
        score = rouge(predictions, references)["rougeL"]
    else:
        score = sum(p.strip() == r for p, r in zip(predictions, references)) / len(references)
    fmt = sum(follows_format(e, p) for e, p in zip(examples, predictions)) / len(examples)
    return {"score": score, "format": fmt}


def evaluate_tasks(model, tokenizer, tasks: dict[str, dict[str, list[dict]]], max_new_tokens: dict[str, int],
                   batch_size: int = 8, split: str = "test"):
    """Generate for every task's held-out examples and score them.

    Returns (a DataFrame with one row per task: metric, score, format adherence; {task: predictions}).
    """
    import pandas as pd

    rows, predictions = [], {}
    for task, splits in tasks.items():
        examples = splits[split]
        predictions[task] = generate_responses(model, tokenizer, examples, max_new_tokens[task], batch_size)
        rows.append({"task": task, "metric": task_metric(task), "n": len(examples),
                     **score_task(examples, predictions[task])})
    return pd.DataFrame(rows), predictions


def examples_side_by_side(examples: list[dict], n: int = 3, **columns: list[str]):
    """A DataFrame with the first `n` examples' prompt, reference and each model's response."""
    import pandas as pd

    frame = {"prompt": [render_prompt(e["instruction"], e["context"])[-300:] for e in examples[:n]],
             "reference": [e["output"] for e in examples[:n]]}
    frame.update({name: values[:n] for name, values in columns.items()})
    return pd.DataFrame(frame)
