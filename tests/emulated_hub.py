"""A local stand-in for the Hugging Face Hub, for testing the course's `hub` path without internet.

`build(root)` writes, under `root` used as `HF_HOME`:

- tiny randomly initialised models under the canonical ids, in the Hub cache layout that
  `from_pretrained` reads offline: `distilbert-base-uncased` (DistilBERT, 6 layers, uncased WordPiece),
  `HuggingFaceTB/SmolLM2-135M-Instruct` (Llama, 30 layers, SmolLM2's tokenizer and chat template) and
  `NousResearch/Llama-2-7b-hf` (Llama, 32 layers, multi-head attention, no pad token). The layer counts
  and tokenizers are the real ones; the widths are tiny. Llama-2's own tokenizer ships in no package this
  machine can install, so the Llama-2 stand-in uses SmolLM2's tokenizer without its chat template.
- `stanfordnlp/imdb` and `knkarthick/dialogsum` in the `datasets` cache, where `load_dataset` finds a
  Hub data set offline after one online load, with the real schemas and stored order: IMDB's splits
  sorted by label (every negative review first), DialogSum's test split with each dialogue three times in
  a row (ids `test_<n>_1..3`, one per reference summary). Their texts are the course's packaged ones:
  VADER movie sentences and the course's dialogues, rewritten with DialogSum's `#Person1#:` speakers.

Run it as `python tests/emulated_hub.py DIR`, then point `HF_HOME=DIR` with `HF_HUB_OFFLINE=1`,
`HF_DATASETS_OFFLINE=1` and `FTKIT_MODELS=hub`. A second run with the same `VERSION` does nothing.
`--tokenizers-from HUB` takes the tokenizers from another emulated Hub (one whose weights were left
behind, as in `tests/gpu_bundle.py`) instead of the packaged models, which then need not be installed.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

VERSION = "4"  # bump when what is built changes, so that a stale emulation is rebuilt
COMMIT = "0" * 40  # the snapshot's revision: any 40 hex digits
# The repos whose tokenizers the build reads: Llama-2's stand-in reuses SmolLM2's.
TOKENIZER_REPOS = ("distilbert-base-uncased", "HuggingFaceTB/SmolLM2-135M-Instruct")
STAMP = "emulated-hub.json"  # written last: its VERSION says a complete build is there
IMDB_PER_LABEL = {"train": 200, "test": 200}
DIALOGSUM_REFERENCES = 3


def repo_folder(root: Path, repo_id: str) -> Path:
    return root / "hub" / f"models--{repo_id.replace('/', '--')}"


def _snapshot(root: Path, repo_id: str) -> Path:
    """The Hub cache folder for `repo_id`'s snapshot, with `refs/main` pointing at it."""
    repo = repo_folder(root, repo_id)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    folder = repo / "snapshots" / COMMIT
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _tokenizer(repo_id: str, packaged: str, role: str, tokenizers_from: Path | None):
    """`repo_id`'s tokenizer from another emulated Hub when given, else the packaged model's."""
    from transformers import AutoTokenizer

    from course.models import resolve_model_path

    if tokenizers_from is not None:
        return AutoTokenizer.from_pretrained(repo_folder(tokenizers_from, repo_id) / "snapshots" / COMMIT)
    return AutoTokenizer.from_pretrained(resolve_model_path(packaged, role, packaged))


def _save(model, tokenizer, root: Path, repo_id: str) -> None:
    import torch

    torch.manual_seed(0)
    model.init_weights()
    folder = _snapshot(root, repo_id)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def build_models(root: Path, tokenizers_from: Path | None = None) -> None:
    import torch
    from transformers import DistilBertConfig, DistilBertForMaskedLM, LlamaConfig, LlamaForCausalLM

    from course.models import MINILM_DISTILBERT, SMOLLM2

    torch.manual_seed(0)
    wordpiece = _tokenizer("distilbert-base-uncased", MINILM_DISTILBERT, "sequence_classifier", tokenizers_from)
    distilbert = DistilBertForMaskedLM(DistilBertConfig(vocab_size=wordpiece.vocab_size, dim=32, hidden_dim=64,
                                                        n_layers=6, n_heads=2, pad_token_id=wordpiece.pad_token_id))
    _save(distilbert, wordpiece, root, "distilbert-base-uncased")

    smollm2_tokenizer = _tokenizer("HuggingFaceTB/SmolLM2-135M-Instruct", SMOLLM2, "causal_lm", tokenizers_from)
    shared = dict(vocab_size=len(smollm2_tokenizer), hidden_size=128, intermediate_size=256, num_attention_heads=4,
                  max_position_embeddings=2048, rms_norm_eps=1e-5)
    smollm2 = LlamaForCausalLM(LlamaConfig(**shared, num_hidden_layers=30, num_key_value_heads=2, tie_word_embeddings=True,
                                           bos_token_id=smollm2_tokenizer.bos_token_id,
                                           eos_token_id=smollm2_tokenizer.eos_token_id,
                                           pad_token_id=smollm2_tokenizer.pad_token_id))
    _save(smollm2, smollm2_tokenizer, root, "HuggingFaceTB/SmolLM2-135M-Instruct")

    llama_tokenizer = _tokenizer("HuggingFaceTB/SmolLM2-135M-Instruct", SMOLLM2, "causal_lm", tokenizers_from)
    llama_tokenizer.chat_template = None  # a base model: Llama-2-7b-hf has no chat template
    llama_tokenizer.pad_token = None  # and no pad token
    llama2 = LlamaForCausalLM(LlamaConfig(**shared, num_hidden_layers=32, num_key_value_heads=4,
                                          tie_word_embeddings=False, bos_token_id=llama_tokenizer.bos_token_id,
                                          eos_token_id=llama_tokenizer.eos_token_id))
    _save(llama2, llama_tokenizer, root, "NousResearch/Llama-2-7b-hf")


def _cache_dataset(root: Path, repo_id: str, config_name: str, splits: dict, features) -> None:
    """Write `splits` where `load_dataset(repo_id)` looks offline: `<cache>/<org>___<name>/<config>/0.0.0/<commit>`."""
    from datasets import Dataset
    from datasets.packaged_modules.parquet.parquet import Parquet

    name = repo_id.split("/")[-1]
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for split, rows in splits.items():
            files[split] = str(Path(tmp) / f"{split}.parquet")
            Dataset.from_list(rows, features=features).to_parquet(files[split])
        # A builder with a repo_id insists its files live in that repo; build it under the bare name, then move it.
        builder = Parquet(cache_dir=str(Path(tmp) / "cache"), dataset_name=name, config_name=config_name,
                          data_files=files, features=features)
        builder.download_and_prepare()
        target = root / "datasets" / repo_id.replace("/", "___") / config_name / "0.0.0" / COMMIT
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(builder.cache_dir, target)


def build_imdb(root: Path) -> None:
    from datasets import ClassLabel, Features, Value

    from course import data

    movies = data.load_sentiment("movies", seed=0, source="offline")
    pools = {"train": movies["train"], "test": movies["test"]}
    splits = {}
    for split, pool in pools.items():
        rows = []
        for label in (0, 1):  # stored order: every negative review, then every positive one
            texts = [row["text"] for row in pool if row["label"] == label][:IMDB_PER_LABEL[split]]
            rows += [{"text": text, "label": label} for text in texts]
        splits[split] = rows
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    _cache_dataset(root, "stanfordnlp/imdb", "plain_text", splits, features)


def _as_dialogsum(dialogue: str) -> str:
    """`Name: text` lines with DialogSum's speakers: `#Person1#: text`, numbered in order of appearance."""
    speakers: dict[str, str] = {}
    lines = []
    for line in dialogue.split("\n"):
        name, text = line.split(":", 1)
        speakers.setdefault(name, f"#Person{len(speakers) + 1}#")
        lines.append(f"{speakers[name]}:{text}")
    return "\n".join(lines)


def build_dialogsum(root: Path) -> None:
    from datasets import Features, Value

    from course import data

    course = data.load_dialogue_summaries(source="offline")
    splits = {}
    for split, part in course.items():
        rows = []
        for n, row in enumerate(part):
            base = {"dialogue": _as_dialogsum(row["dialogue"]), "topic": row["topic"]}
            if split != "test":
                rows.append({"id": f"{split}_{n}", **base, "summary": row["summary"]})
                continue
            first_sentence = row["summary"].split(". ")[0].rstrip(".") + "."
            references = [row["summary"], first_sentence, f"#Person1# and #Person2# talk about {row['topic']}."]
            rows += [{"id": f"test_{n}_{k + 1}", **base, "summary": ref} for k, ref in enumerate(references)]
        splits[split] = rows
    features = Features({name: Value("string") for name in ("id", "dialogue", "summary", "topic")})
    _cache_dataset(root, "knkarthick/dialogsum", "default", splits, features)


def build(root: str | Path, tokenizers_from: str | Path | None = None) -> Path:
    """Build the emulated Hub under `root` (skipped when a build of this `VERSION` is there)."""
    root = Path(root).expanduser().resolve()
    stamp = root / STAMP
    if stamp.exists() and json.loads(stamp.read_text()).get("version") == VERSION:
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    build_models(root, Path(tokenizers_from).resolve() if tokenizers_from else None)
    build_imdb(root)
    build_dialogsum(root)
    stamp.write_text(json.dumps({"version": VERSION}))
    return root


if __name__ == "__main__":
    import argparse
    import os

    parser = argparse.ArgumentParser(description="Build the emulated Hub (see this file's docstring).")
    parser.add_argument("root", nargs="?", default="build/emulated-hub", help="the folder to use as HF_HOME")
    parser.add_argument("--tokenizers-from", help="another emulated Hub whose tokenizers to use")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(f"emulated Hub: {build(args.root, args.tokenizers_from)}")
