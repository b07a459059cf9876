"""The validation sweep behind notebook 04's learning rates: `python -m course.lora_rate_sweep [--profile cpu]`.

Notebook 04 compares LoRA with two references on the same encoder, sentences and steps: full fine-tuning
(every parameter trains) and head only (the encoder frozen). A method run at a poor rate loses for the
wrong reason, so each one trains here as the notebook trains it (the same training sentences, batches,
steps and seeded head) at a few rates, and is scored on validation sentences the notebook never tests on.
The best rate on validation is the notebook's `full_lr`, `head_lr` or `lora_lr`.

Rows go to `results/sweeps/04_rates.json` (another profile's to `04_rates_<profile>.json`); a test checks that
the cpu profile's rates are the file's choice. The file records how long each method's runs took.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

NOTEBOOK = "04_lora_distilbert"
RATES = {"full fine-tuning": [2e-5, 5e-5, 1e-4, 2e-4], "head only": [3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
         "LoRA r=8 (q_lin, v_lin)": [3e-4, 1e-3, 3e-3, 1e-2]}
BUDGET_KEY = {"full fine-tuning": "full_lr", "head only": "head_lr", "LoRA r=8 (q_lin, v_lin)": "lora_lr"}


def make_model(method: str, model_name: str, seed: int):
    """A fresh model for `method`, built as notebook 04 builds it (the same seeded head)."""
    from course import lora_distilbert, models

    if method == "LoRA r=8 (q_lin, v_lin)":
        return lora_distilbert.peft_classifier(model_name, ["q_lin", "v_lin"], r=8, alpha=16, seed=seed)
    model, _ = models.load_sequence_classifier(model_name, num_labels=2, seed=seed)
    if method == "head only":
        model.distilbert.requires_grad_(False)
    return model


def sweep(profile: str = "cpu", rates: dict[str, list[float]] = RATES) -> dict:
    """Train and score every (method, rate) of `rates`; return the rows (method, rate, steps, validation
    accuracy), the seconds per method and the best rate per method, by its budget name."""
    from ftkit import batching
    from course import config, data, lora_distilbert, models

    unknown = set(rates) - set(RATES)
    if unknown:
        raise ValueError(f"no sweep for {sorted(unknown)}; the methods are {list(RATES)}.")
    cfg = config.setup(NOTEBOOK, profile=profile)
    budget = cfg.budget
    model_name = cfg.model_name("sequence_classifier")
    movies = data.load_sentiment("movies", seed=0)
    train_set = movies["train"].shuffle(seed=cfg.seed).select(range(budget.n_train))
    validation = movies["validation"].select(range(min(budget.n_test, len(movies["validation"]))))
    _, tokenizer = models.load_sequence_classifier(model_name, num_labels=2, seed=cfg.seed)
    steps = budget.epochs * math.ceil(len(train_set) / budget.batch_size)
    validation_loader = batching.classification_loader(validation, tokenizer, batch_size=budget.eval_batch_size,
                                                       max_length=budget.max_length)
    rows, seconds = [], {}
    for method, method_rates in rates.items():
        began = time.perf_counter()
        for lr in method_rates:
            config.seed_everything(cfg.seed)
            train_loader = batching.classification_loader(train_set, tokenizer, batch_size=budget.batch_size,
                                                          max_length=budget.max_length, shuffle=True, seed=cfg.seed)
            model = make_model(method, model_name, cfg.seed).to(cfg.device)
            _, accuracy = lora_distilbert.train_and_evaluate(model, train_loader, validation_loader, steps=steps,
                                                             lr=lr, desc=f"{method}, lr {lr:g}")
            rows.append({"method": method, "learning_rate": lr, "steps": steps, "accuracy": accuracy})
            print(f"{method}, lr {lr:g}: validation accuracy {accuracy:.1%}", flush=True)
        seconds[method] = round(time.perf_counter() - began, 1)
    chosen = {}
    for method in rates:
        scored = [r for r in rows if r["method"] == method]
        chosen[method] = max(scored, key=lambda r: r["accuracy"])["learning_rate"]
    return {"notebook": NOTEBOOK, "profile": cfg.profile, "hardware": cfg.hardware, "steps": steps,
            "training_sentences": len(train_set), "validation_sentences": len(validation), "seconds": seconds,
            "rows": rows, "chosen": chosen}


def chosen_rates(path) -> dict[str, float]:
    """The recorded best rate of each method, under the budget's names (`full_lr`, `head_lr`, `lora_lr`)."""
    found = json.loads(Path(path).read_text())
    return {BUDGET_KEY[method]: lr for method, lr in found["chosen"].items()}


def show(path) -> dict[str, float]:
    """Print a recorded sweep (validation accuracy per method and rate); return `chosen_rates`."""
    found = json.loads(Path(path).read_text())
    print(f"{found['profile']} profile, {found['hardware']}: {found['steps']} steps on {found['training_sentences']:,} "
          f"training sentences, scored on {found['validation_sentences']:,} validation sentences")
    for row in found["rows"]:
        mark = "  <- chosen" if found["chosen"][row["method"]] == row["learning_rate"] else ""
        print(f"{row['method']:>24}  lr {row['learning_rate']:<7g} validation accuracy {row['accuracy']:.1%}{mark}")
    print("seconds per method: " + ", ".join(f"{m} {s:.0f}" for m, s in found["seconds"].items()))
    return chosen_rates(path)


def main(argv: list[str] | None = None) -> int:
    from course.results import run_sweep_command

    return run_sweep_command(argv, description=__doc__.splitlines()[0], name="04_rates", sweep=sweep, show=show)


if __name__ == "__main__":
    raise SystemExit(main())
