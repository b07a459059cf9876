"""The validation runs behind notebook 03's ULMFiT rate: `python -m course.ulmfit_sweep [--profile cpu]`.

Every run trains as notebook 03 trains (the same training sentences, batches, steps and start) and is scored
on the validation split, which the notebook never uses:

- ULMFiT's three techniques together at a few peak rates: the best is the notebook's `ulmfit_lr`;
- at that rate, ULMFiT's own recipe (one epoch per unfreezing stage) and the combination without gradual
  unfreezing;
- full fine-tuning at three seeds (the head's initialisation and the batch order): how far an accuracy moves
  by chance alone, the yardstick for every gap in the table.

The rows go to `results/sweeps/03_ulmfit.json` (another profile's to `03_ulmfit_<profile>.json`); a test checks
that the notebook's `ulmfit_lr` is its choice.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

NOTEBOOK = "03_transfer_learning"
RATES = (1e-3, 2e-3, 4e-3)
SEEDS = (0, 1, 2)
COMBINATION = "ULMFiT (all three)"  # the variant whose best rate the notebook uses


def sweep(profile: str = "cpu", rates=RATES, seeds=SEEDS) -> dict:
    """Train and score every run; return the rows (variant, rate, seed, steps, validation accuracy, seconds)
    and the chosen `ulmfit_lr`."""
    from ftkit import batching, evaluate, transfer
    from course import config, data, models
    from ftkit.schedules import layer_groups

    cfg = config.setup(NOTEBOOK, profile=profile)
    budget = cfg.budget
    splits = data.load_sentiment("movies", seed=0)
    train_set = splits["train"].shuffle(seed=cfg.seed).select(range(budget.n_train))
    validation = splits["validation"].select(range(min(budget.n_test, len(splits["validation"]))))
    probe, tokenizer = models.load_sequence_classifier(cfg.model_name("sequence_classifier"), num_labels=2)
    n_groups = len(layer_groups(probe))
    loader_args = dict(tokenizer=tokenizer, max_length=budget.max_length)
    validation_loader = batching.classification_loader(validation, batch_size=budget.eval_batch_size, **loader_args)
    rows = []

    def training_batches(seed: int):
        return batching.classification_loader(train_set, batch_size=budget.batch_size, shuffle=True, seed=seed,
                                              **loader_args)

    def run(variant: str, lr: float, seed: int = cfg.seed, steps: int = budget.steps, **techniques) -> float:
        config.seed_everything(seed)
        model, _ = models.load_sequence_classifier(cfg.model_name("sequence_classifier"), num_labels=2, seed=seed)
        began = time.perf_counter()
        transfer.fine_tune(model, training_batches(seed), steps=steps, lr=lr, desc=f"{variant}, lr {lr:g}, seed {seed}",
                           **techniques)
        accuracy = evaluate.classification_accuracy(model, validation_loader)
        rows.append({"variant": variant, "learning_rate": lr, "seed": seed, "steps": steps, "accuracy": accuracy,
                     "seconds": round(time.perf_counter() - began, 1)})
        print(f"{variant}, lr {lr:g}, seed {seed}: validation accuracy {accuracy:.1%}", flush=True)
        return accuracy

    all_three = dict(slanted=True, discriminative=budget.factor, gradual=True)
    by_rate = {lr: run(COMBINATION, lr, **all_three) for lr in rates}
    chosen = max(by_rate, key=by_rate.get)
    epoch = len(training_batches(cfg.seed))
    run("ULMFiT, one epoch per stage", chosen, steps=n_groups * epoch, stage_steps=epoch, **all_three)
    run("ULMFiT without gradual unfreezing", chosen, **{**all_three, "gradual": False})
    for seed in seeds:
        run("full fine-tuning", budget.lr, seed=seed)
    return {"notebook": NOTEBOOK, "profile": cfg.profile, "hardware": cfg.hardware,
            "validation_sentences": len(validation), "rows": rows, "chosen": {"ulmfit_lr": chosen}}


def show(path) -> float:
    """Print a recorded sweep, with the spread of full fine-tuning over seeds; return the chosen rate."""
    found = json.loads(Path(path).read_text())
    print(f"{found['profile']} profile, {found['hardware']}: scored on {found['validation_sentences']:,} "
          f"validation sentences")
    for row in found["rows"]:
        print(f"{row['variant']:>34}  lr {row['learning_rate']:<6g} seed {row['seed']}  {row['steps']:>5} steps: "
              f"{row['accuracy']:.1%}")
    by_seed = [r["accuracy"] for r in found["rows"] if r["variant"] == "full fine-tuning"]
    if by_seed:
        print(f"full fine-tuning over {len(by_seed)} seeds: {min(by_seed):.1%} to {max(by_seed):.1%} "
              f"(mean {sum(by_seed) / len(by_seed):.1%})")
    print(f"best rate for {COMBINATION} on validation: {found['chosen']['ulmfit_lr']:g}")
    return found["chosen"]["ulmfit_lr"]


def main(argv: list[str] | None = None) -> int:
    from course.results import run_sweep_command

    return run_sweep_command(argv, description=__doc__.splitlines()[0], name="03_ulmfit", sweep=sweep, show=show)


if __name__ == "__main__":
    raise SystemExit(main())
