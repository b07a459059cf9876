"""The validation sweeps behind notebook 06's learning rates: `python -m course.prompt_rate_sweep [--methods ...]`.

Each method trains for the notebook's steps at each of a few rates, from the notebook's start, and is scored
on validation sentences that neither the notebook's tests nor its exercises use:

- prefix tuning and prefix tuning + MLP start from every layer's keys and values of `INIT_TEXT` (the MLP
  fitted to them); the best rate on validation is the one the notebook uses;
- prompt tuning and LoRA, as the notebook builds them, show how far apart two methods' good rates are.

Rows go to `results/sweeps/06_rates.json` (another profile's to `06_rates_<profile>.json`); a rerun of
some methods replaces their rows and keeps the others. A test checks that the notebook's prefix rates are
the file's choice. In the cpu profile each run is as long as one of the notebook's; the file records how
long each sweep took.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

NOTEBOOK = "06_soft_prompts_adapters"
# The notebook's task and start; tests/test_prompt_rate_sweep.py checks that the notebook still uses these.
TEMPLATE = "Review: {text}\nSentiment:"
INIT_TEXT = "Classify the sentiment of this movie review as positive or negative."
N_TOKENS = 20
RATES = {"prefix tuning": [1e-3, 3e-3, 1e-2], "prefix tuning + MLP": [1e-4, 3e-4, 1e-3],
         "prompt tuning": [1e-4, 1e-3, 1e-2, 1e-1], "LoRA": [1e-4, 1e-3, 1e-2, 1e-1]}
CHOSEN_HERE = ("prefix tuning", "prefix tuning + MLP")  # the methods whose notebook rate this sweep picks


def make_model(method: str, cfg, base, tokenizer, prefix_start: torch.Tensor):
    """A fresh trainable model for `method`, built as notebook 06 builds it (the base stays frozen)."""
    from peft import LoraConfig, PrefixTuningConfig, get_peft_model

    from ftkit import soft_prompts as sp
    from course import models

    if method == "prompt tuning":
        return sp.SoftPrompt(base, N_TOKENS, init_text=INIT_TEXT, tokenizer=tokenizer)
    if method == "LoRA":
        config = LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    else:
        extra = dict(prefix_projection=True, encoder_hidden_size=128) if method.endswith("MLP") else {}
        config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N_TOKENS, init_weights="zero", **extra)
    model = get_peft_model(models.load_causal_lm(cfg.model_name("causal_lm"))[0].to(cfg.device), config)
    if method == "prefix tuning + MLP":
        sp.fit_prefix_encoder(model.prompt_encoder["default"], prefix_start, steps=cfg.budget.prefix_fit_steps)
    elif method == "prefix tuning":
        model.prompt_encoder["default"].embedding.weight.data.copy_(prefix_start)
    return model


def sweep(profile: str = "cpu", n_validation: int = 320, rates: dict[str, list[float]] = RATES) -> dict:
    """Train and score every (method, rate) of `rates`; return the table, the zero-shot accuracy on the
    same sentences, the seconds per method, and the best rate per method."""
    import pandas as pd

    from ftkit import soft_prompts as sp
    from course import config, data, models, soft_prompts_adapters

    unknown = set(rates) - set(RATES)
    if unknown:
        raise ValueError(f"no sweep for {sorted(unknown)}; the methods are {list(RATES)}.")
    cfg = config.setup(NOTEBOOK, profile=profile)
    budget = cfg.budget
    splits = data.load_sentiment("movies", seed=0)
    train_set = splits["train"].shuffle(seed=0).select(range(budget.n_train))
    first = budget.n_sweep  # the validation sentences before this one are the notebook's exercises'
    validation = splits["validation"].select(range(first, min(first + n_validation, len(splits["validation"]))))
    base, tokenizer = models.load_causal_lm(cfg.model_name("causal_lm"))
    base.to(cfg.device)
    label_ids = sp.verbalizer_token_ids(tokenizer)
    validation_loader = sp.verbalizer_loader(validation, tokenizer, TEMPLATE, batch_size=budget.eval_batch_size)
    prefix_start = sp.prefix_from_text(base, tokenizer, INIT_TEXT, N_TOKENS)

    def training_batches():
        return sp.verbalizer_loader(train_set, tokenizer, TEMPLATE, batch_size=budget.batch_size, shuffle=True, seed=0)

    tables, seconds = [], {}
    for method, method_rates in rates.items():
        began = time.perf_counter()
        tables.append(soft_prompts_adapters.learning_rate_sweep(
            lambda: make_model(method, cfg, base, tokenizer, prefix_start), method_rates, training_batches,
            validation_loader, label_ids, steps=budget.steps, method=method))
        seconds[method] = round(time.perf_counter() - began, 1)
    table = pd.concat(tables, ignore_index=True)
    best = table.loc[table.groupby("method", sort=False)["accuracy"].idxmax()]
    return {"notebook": NOTEBOOK, "profile": cfg.profile, "hardware": cfg.hardware, "steps": budget.steps,
            "validation_sentences": f"{first} to {first + len(validation) - 1} of the validation split",
            "zero_shot_accuracy": sp.verbalizer_accuracy(base, validation_loader, label_ids),
            "seconds": seconds, "rows": table.to_dict("records"),
            "chosen": dict(zip(best["method"], best["learning_rate"]))}


def merge(old: dict, new: dict) -> dict:
    """`new` with the rows, seconds and choices of `old`'s other methods kept (same profile and sentences)."""
    if (old.get("profile"), old.get("validation_sentences")) != (new["profile"], new["validation_sentences"]):
        return new
    swept = set(new["chosen"])
    return {**new, "rows": [r for r in old["rows"] if r["method"] not in swept] + new["rows"],
            "seconds": {**{m: s for m, s in old["seconds"].items() if m not in swept}, **new["seconds"]},
            "chosen": {**{m: r for m, r in old["chosen"].items() if m not in swept}, **new["chosen"]}}


def show(path, methods=None) -> dict:
    """Print a recorded sweep (validation accuracy per method and rate, and the zero-shot accuracy on the
    same sentences) for `methods` (default: all); return their chosen rates."""
    found = json.loads(Path(path).read_text())
    methods = methods or list(found["chosen"])
    print(f"{found['profile']} profile, {found['hardware']}: {found['steps']} steps per run, scored on "
          f"{found['validation_sentences']} (zero-shot there: {found['zero_shot_accuracy']:.1%})")
    for row in found["rows"]:
        if row["method"] in methods:
            print(f"{row['method']:>20} lr {row['learning_rate']:g}: validation accuracy {row['accuracy']:.1%}")
    chosen = {m: found["chosen"][m] for m in methods}
    print(f"best on validation: {chosen}")
    return chosen


def table(path, methods):
    """A recorded sweep's rows for `methods` as a DataFrame, with the accuracy in percent."""
    import pandas as pd

    rows = pd.DataFrame(json.loads(Path(path).read_text())["rows"])
    rows = rows[rows["method"].isin(methods)].reset_index(drop=True)
    return rows.assign(**{"accuracy (%)": 100 * rows["accuracy"]})


def main(argv: list[str] | None = None) -> int:
    from course.results import sweep_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "gpu"])
    parser.add_argument("--methods", nargs="+", default=list(RATES), choices=list(RATES))
    parser.add_argument("--validation-sentences", type=int, default=320)
    args = parser.parse_args(argv)
    found = sweep(args.profile, args.validation_sentences, {m: RATES[m] for m in args.methods})
    path = sweep_path("06_rates", args.profile)
    if path.exists():
        found = merge(json.loads(path.read_text()), found)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(found, indent=1) + "\n")
    show(path, args.methods)
    print(f"seconds: {found['seconds']}; written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
