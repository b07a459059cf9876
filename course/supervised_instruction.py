"""Notebook 02's instruction tasks and displays: the multi-task set built from the course's own sources (the
instructions, the builders and the split sizes), the masked tokens shown in brackets, per-task evaluation as
a table, each model's per-item scores for paired gaps, and responses side by side. The method (template, response-only labels, batching, generation,
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


def item_scores_by_model(tasks: dict, outputs_by_model: dict[str, dict[str, list[str]]], task: str,
                         split: str = "test") -> dict[str, list[float]]:
    """{model: each held-out item's score on `task`} from each model's `evaluate_tasks` predictions: the
    same items in the same order, ready for paired gaps (`course.gaps`)."""
    from ftkit.instructions import item_scores

    return {model: item_scores(tasks[task][split], outputs[task]) for model, outputs in outputs_by_model.items()}


def examples_side_by_side(examples: list[dict], n: int = 3, **columns: list[str]):
    """A DataFrame with the first `n` examples' prompt, reference and each model's response."""
    import pandas as pd

    frame = {"prompt": [render_prompt(e["instruction"], e["context"])[-300:] for e in examples[:n]],
             "reference": [e["output"] for e in examples[:n]]}
    frame.update({name: values[:n] for name, values in columns.items()})
    return pd.DataFrame(frame)


# ---------------------------------------------------------------------------------------------------------
# Widget: the padding that length-grouped batching saves.

def padded_positions(lengths: list[int], batches: list[list[int]]) -> int:
    """Padding tokens a list of batches (lists of row indices) costs: each batch pads to its longest row."""
    return sum(max(lengths[i] for i in batch) * len(batch) - sum(lengths[i] for i in batch) for batch in batches)


def show_padding_saved(lengths: list[int], batch_size: int, seed: int = 0) -> None:
    """Print the padding tokens of shuffled batches against length-grouped ones
    (`ftkit.instructions.length_grouped_batches`) for rows of these token `lengths`, and the share of the
    computed positions that grouping saves."""
    import torch

    from course.exercises import preserved_random_state
    from ftkit.instructions import length_grouped_batches

    with preserved_random_state():
        order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed)).tolist()
        shuffled = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        grouped = length_grouped_batches(lengths, batch_size, seed)
    real = sum(lengths)
    pad_shuffled, pad_grouped = padded_positions(lengths, shuffled), padded_positions(lengths, grouped)
    saved = 1 - (real + pad_grouped) / (real + pad_shuffled)
    print(f"batch size {batch_size}, {len(lengths)} rows, {real:,} real tokens: shuffled batches pad "
          f"{pad_shuffled:,} tokens ({pad_shuffled / (real + pad_shuffled):.0%} of the positions computed), "
          f"length-grouped batches {pad_grouped:,} ({pad_grouped / (real + pad_grouped):.0%}); "
          f"grouping saves {saved:.0%} of the positions.")


# ---------------------------------------------------------------------------------------------------------
# Exercises

class _FixedChat:
    """A stand-in tokenizer whose chat template returns fixed ids: `prompt_ids` (the user's turn with the
    assistant header) for the prompt alone, `prompt_ids + response_ids` for the whole chat. It lets
    `ftkit.instructions.tokenize_example` label ids that the check chose."""

    def __init__(self, prompt_ids: list[int], response_ids: list[int]):
        self.prompt_ids, self.response_ids = list(prompt_ids), list(response_ids)

    def apply_chat_template(self, messages, add_generation_prompt: bool = False, tokenize: bool = True):
        roles = [m["role"] for m in messages]
        return self.prompt_ids + (self.response_ids if "assistant" in roles else [])


def check_response_only_labels(response_only_batch) -> "Verdict":
    """Check a learner's `response_only_batch(prompts, responses, pad_token_id)` -> (input_ids, labels)
    against `ftkit.instructions.tokenize_example` and `collate` on fresh rows of different lengths whose
    responses end with the end-of-turn token, which is also the pad token (as in SmolLM2's chat template):
    so a mask built from "where the id is the pad id" wrongly hides the end of every response."""
    import torch

    from course.exercises import Case, check, fresh_generator
    from ftkit.instructions import collate, tokenize_example

    def cases():
        g = fresh_generator(202)
        for pad, prompt_lengths, response_lengths in [(2, [5, 8, 4], [3, 1, 6]), (0, [7, 3], [2, 5]),
                                                      (2, [4, 4, 9, 6], [2, 7, 1, 3])]:
            prompts = [torch.randint(3, 1000, (n,), generator=g).tolist() for n in prompt_lengths]
            responses = [torch.randint(3, 1000, (n,), generator=g).tolist() + [pad, 198] for n in response_lengths]
            example = {"instruction": "", "context": "", "output": ""}
            rows = [tokenize_example(_FixedChat(p, r), example) for p, r in zip(prompts, responses)]
            batch = collate(rows, pad)
            yield Case(([list(p) for p in prompts], [list(r) for r in responses], pad),
                       (batch["input_ids"], batch["labels"]))

    return check("response-only labels (ftkit.instructions.tokenize_example and collate)", response_only_batch,
                 cases, hint="labels are -100 on every prompt token and on the padding, and equal to the ids on "
                             "every response token, its end-of-turn token included; pad on the right.")
