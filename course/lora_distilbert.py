"""Notebook 04 (LoRA on DistilBERT): the loop that trains one variant, inference latency, sizes on disk,
peft variants of the course's classifier, the accuracy of each served adapter, and the sweep's plot.

The LoRA algorithm itself (the layer, its injection, merging, counting) is `ftkit.lora`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from ftkit.evaluate import evaluation_mode
from ftkit.precision import to_device


def train_and_evaluate(model: nn.Module, train_loader, test_loader, *, steps: int, lr: float, desc: str):
    """Train `model` (its trainable parameters) for `steps` AdamW steps, then measure test accuracy.

    Returns `(TrainResult, accuracy)`; the result's last evaluation holds the accuracy too, and `correct`
    (1 or 0 per test example, in the loader's order) for paired comparisons between runs.
    """
    from ftkit.evaluate import classification_correct
    from ftkit.train import train

    def evaluate(trained):
        correct = classification_correct(trained, test_loader)
        return {"accuracy": sum(correct) / len(correct), "correct": correct}

    result = train(model, train_loader, steps=steps, lr=lr, evaluate=evaluate, desc=desc)
    return result, result.evaluations[-1]["accuracy"]


def latency_ms(model: nn.Module, batch: dict, repeats: int = 5) -> float:
    """Median wall time (milliseconds) of one forward pass on `batch`, after one warm-up pass, on the
    model's device and in its precision policy's compute dtype."""
    with evaluation_mode(model) as device:
        inputs = to_device({k: v for k, v in batch.items() if k != "labels"}, device)
        model(**inputs)
        wait_for_device(device)
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            model(**inputs)
            wait_for_device(device)
            times.append(1000 * (time.perf_counter() - began))
    return sorted(times)[len(times) // 2]


def wait_for_device(device: torch.device) -> None:
    """Block until the GPU has finished its queued work: CUDA kernels run asynchronously, so a clock read
    right after a call would time only their launch. A no-op on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def folder_size_bytes(folder: str | Path, pattern: str = "*.safetensors") -> int:
    """Total size in bytes of the files matching `pattern` in `folder`."""
    return sum(path.stat().st_size for path in Path(folder).glob(pattern))


# ---------------------------------------------------------------------------------------------------
# peft side by side: building variants, switching adapters
# ---------------------------------------------------------------------------------------------------

HEAD_MODULES = ("pre_classifier", "classifier")  # DistilBERT's classification head


def peft_classifier(name: str, target_modules: Iterable[str], r: int, alpha: float | None = None,
                    seed: int = 0, adapter_name: str = "default"):
    """A fresh sequence classifier (seeded head) wrapped by peft: LoRA on `target_modules`, head trained.

    `alpha` defaults to 2 r (a scale of 2 at every rank). Returns the `PeftModel`.
    """
    from peft import LoraConfig, get_peft_model

    from course.models import load_sequence_classifier

    model, _ = load_sequence_classifier(name, num_labels=2, seed=seed)
    config = LoraConfig(r=r, lora_alpha=alpha if alpha is not None else 2 * r, target_modules=list(target_modules),
                        task_type="SEQ_CLS", modules_to_save=list(HEAD_MODULES))
    return get_peft_model(model, config, adapter_name=adapter_name)


@torch.no_grad()
def adapter_correct(peft_model, adapters: Iterable[str], loaders: dict) -> dict:
    """`{adapter: {test set: [1 or 0 per example]}}`, switching adapters with `set_adapter`."""
    from ftkit.evaluate import classification_correct

    found = {}
    for adapter in adapters:
        peft_model.set_adapter(adapter)
        found[adapter] = {domain: classification_correct(peft_model, loader) for domain, loader in loaders.items()}
    return found


def adapter_accuracy_table(correct: dict):
    """Test accuracy (%) of each adapter (rows) on each test set (columns), from `adapter_correct`."""
    import pandas as pd

    return pd.DataFrame({adapter: {domain: 100 * sum(c) / len(c) for domain, c in by_domain.items()}
                         for adapter, by_domain in correct.items()}).T.rename_axis("adapter")


def plot_accuracy_vs_parameters(sweep, references: dict[str, float], *, title: str):
    """Accuracy (%) against trainable parameters (log scale), one line per `sweep["targets"]`, each point
    labelled with its rank, and a dashed horizontal line for each reference (e.g. full fine-tuning)."""
    from course.plots import line_chart

    ax = line_chart(sweep, "trainable", "accuracy", hue="targets", title=title, markers=True,
                    xlabel="trainable parameters (count, log scale)", ylabel="test accuracy (%)")
    ax.set_xscale("log")
    for row in sweep.itertuples():
        ax.annotate(f"r={row.r}", (row.trainable, row.accuracy), fontsize=8, xytext=(3, 3), textcoords="offset points")
    for (label, value), style in zip(references.items(), ["--", ":", "-."]):
        ax.axhline(value, linestyle=style, color="gray", label=label)
    ax.legend(fontsize=8)
    return ax


# ---------------------------------------------------------------------------------------------------
# Exercises
# ---------------------------------------------------------------------------------------------------

def check_lora_forward(lora_forward) -> "Verdict":
    """Check a learner's `lora_forward(x, weight, bias, A, B, alpha, r)` against `ftkit.lora.LoRALinear` on
    fresh layers whose B is not zero (at initialisation B = 0 would hide a missing scale)."""
    from course.exercises import Case, check, fresh_generator
    from ftkit.lora import LoRALinear

    def cases():
        g = fresh_generator(404)
        for d_in, d_out, r, alpha, batch in [(6, 5, 2, 16.0, 3), (12, 8, 4, 8.0, 2), (9, 9, 1, 1.0, 4)]:
            base = nn.Linear(d_in, d_out)
            with torch.no_grad():
                base.weight.copy_(torch.randn(d_out, d_in, generator=g))
                base.bias.copy_(torch.randn(d_out, generator=g))
            layer = LoRALinear(base, r=r, alpha=alpha)
            with torch.no_grad():
                layer.lora_A.copy_(torch.randn(r, d_in, generator=g))
                layer.lora_B.copy_(torch.randn(d_out, r, generator=g))
            x = torch.randn(batch, d_in, generator=g)
            with torch.no_grad():
                expected = layer(x)
            yield Case((x, base.weight.detach().clone(), base.bias.detach().clone(), layer.lora_A.detach().clone(),
                        layer.lora_B.detach().clone(), alpha, r), expected)

    return check("LoRA layer (ftkit.lora.LoRALinear)", lora_forward, cases,
                 hint="the output is x W^T + b + (alpha / r) x A^T B^T; check the scale and the transposes.")


def check_lora_trainable_count(lora_trainable_count) -> "Verdict":
    """Check a learner's `lora_trainable_count(d_in, d_out, r)`: the parameters LoRA trains on one
    d_out x d_in linear layer, against `ftkit.lora.lora_trainable_count`."""
    from course.exercises import Case, check
    from ftkit.lora import lora_trainable_count as reference

    def cases():
        for d_in, d_out, r in [(768, 768, 8), (768, 3072, 4), (384, 1536, 16), (10, 3, 1)]:
            expected = reference(nn.ModuleDict({"layer": nn.Linear(d_in, d_out)}), ["layer"], r=r)
            yield Case((d_in, d_out, r), expected)

    return check("count of LoRA's trainable parameters", lora_trainable_count, cases,
                 hint="A is r x d_in and B is d_out x r; the frozen weight and its bias are not trained.")
