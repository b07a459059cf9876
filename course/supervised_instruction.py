"""Notebook 02's instruction tasks and displays: the multi-task set built from the course's own sources (the
instructions, the builders and the split sizes), the masked tokens shown in brackets, per-task evaluation as
a table, and responses side by side. The method (template, response-only labels, batching, generation,
format checks and scores) is in `ftkit.instructions`.
"""
from __future__ import annotations

import random
import re

from ftkit.causal_lm import IGNORE_INDEX
from ftkit.instructions import generate_responses, render_prompt, score_task, task_metric

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
# Showing and evaluating.

def show_mask(tokenizer, row: dict[str, list[int]]) -> str:
    """The tokens of one tokenised example, the ones the loss ignores in [brackets]."""
    pieces = []
    for token, label in zip(row["input_ids"], row["labels"]):
        text = tokenizer.decode([token])
        pieces.append(f"[{text}]" if label == IGNORE_INDEX else text)
    return "".join(pieces)


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
