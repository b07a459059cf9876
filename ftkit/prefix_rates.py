"""Reproduce notebook 06's choice of prefix-tuning learning rates: `python -m ftkit.prefix_rates`.

Prefix tuning and prefix tuning + MLP train for the notebook's steps at each of a few rates, from the
notebook's start (every layer's keys and values of `INIT_TEXT`; for the MLP variant, the MLP fitted to
them). Each run is scored on validation sentences that neither the notebook's tests nor its section-8
sweep use. The best rate per method on validation is the one notebook 06 uses. The table goes to
`results/sweeps/06_prefix_rates.json`, and a test checks that the notebook's rates are the file's choice.

In the cpu profile that is six training runs of notebook 06's length; the file records how long they took.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

NOTEBOOK = "06_soft_prompts_adapters"
# The notebook's task and start; tests/test_prefix_rates.py checks that the notebook still uses these.
TEMPLATE = "Review: {text}\nSentiment:"
INIT_TEXT = "Classify the sentiment of this movie review as positive or negative."
N_TOKENS = 20
RATES = {"prefix tuning": [1e-3, 3e-3, 1e-2], "prefix tuning + MLP": [1e-4, 3e-4, 1e-3]}


def prefix_model(cfg, start: torch.Tensor, mlp: bool):
    """A freshly loaded base model with peft prefix tuning, started at the text prefix `start`."""
    from peft import PrefixTuningConfig, get_peft_model

    from ftkit import models, soft_prompts as sp

    extra = dict(prefix_projection=True, encoder_hidden_size=128) if mlp else {}
    model = get_peft_model(models.load_causal_lm(cfg.model_name("causal_lm"))[0].to(cfg.device),
                           PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=N_TOKENS,
                                              init_weights="zero", **extra))
    encoder = model.prompt_encoder["default"]
    if mlp:
        sp.fit_prefix_encoder(encoder, start)
    else:
        encoder.embedding.weight.data.copy_(start)
    return model


def sweep(profile: str = "cpu", n_validation: int = 320, rates: dict[str, list[float]] = RATES) -> dict:
    """Train and score every (method, rate); return what `main` writes (the table, the zero-shot
    accuracy on the same sentences, and the best rate per method)."""
    import pandas as pd

    from ftkit import config, data, models, soft_prompts as sp

    cfg = config.setup(NOTEBOOK, profile=profile)
    budget = cfg.budget
    splits = data.load_sentiment("movies", seed=0)
    train_set = splits["train"].shuffle(seed=0).select(range(budget.n_train))
    first = budget.n_sweep  # the notebook's section-8 sweep uses the validation sentences before this one
    validation = splits["validation"].select(range(first, min(first + n_validation, len(splits["validation"]))))
    base, tokenizer = models.load_causal_lm(cfg.model_name("causal_lm"))
    base.to(cfg.device)
    label_ids = sp.verbalizer_token_ids(tokenizer)
    validation_loader = sp.verbalizer_loader(validation, tokenizer, TEMPLATE, batch_size=budget.eval_batch_size)
    start = sp.prefix_from_text(base, tokenizer, INIT_TEXT, N_TOKENS)

    def training_batches():
        return sp.verbalizer_loader(train_set, tokenizer, TEMPLATE, batch_size=budget.batch_size, shuffle=True, seed=0)

    began = time.perf_counter()
    table = pd.concat([sp.learning_rate_sweep(lambda mlp=method.endswith("MLP"): prefix_model(cfg, start, mlp),
                                              method_rates, training_batches, validation_loader, label_ids,
                                              steps=budget.steps, method=method)
                       for method, method_rates in rates.items()], ignore_index=True)
    best = table.loc[table.groupby("method")["accuracy"].idxmax()]
    return {"notebook": NOTEBOOK, "profile": cfg.profile, "hardware": cfg.hardware, "steps": budget.steps,
            "validation_sentences": f"{first} to {first + len(validation) - 1} of the validation split",
            "zero_shot_accuracy": sp.verbalizer_accuracy(base, validation_loader, label_ids),
            "seconds": round(time.perf_counter() - began, 1), "rows": table.to_dict("records"),
            "chosen": dict(zip(best["method"], best["learning_rate"]))}


def show(path) -> dict:
    """Print a recorded sweep (validation accuracy per method and rate, and the zero-shot accuracy on the
    same sentences); return its chosen rate per method."""
    found = json.loads(Path(path).read_text())
    print(f"{found['profile']} profile, {found['hardware']}: {found['steps']} steps per run, scored on "
          f"{found['validation_sentences']} (zero-shot there: {found['zero_shot_accuracy']:.1%})")
    for row in found["rows"]:
        print(f"{row['method']:>20} lr {row['learning_rate']:g}: validation accuracy {row['accuracy']:.1%}")
    print(f"chosen: {found['chosen']}")
    return found["chosen"]


def main(argv: list[str] | None = None) -> int:
    from ftkit.results import results_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "gpu"])
    parser.add_argument("--validation-sentences", type=int, default=320)
    args = parser.parse_args(argv)
    found = sweep(args.profile, args.validation_sentences)
    path = results_dir() / "sweeps" / f"{NOTEBOOK.split('_')[0]}_prefix_rates.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(found, indent=1) + "\n")
    show(path)
    print(f"{found['seconds']:.0f} s; written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
