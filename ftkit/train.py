"""A small, readable training loop for the notebooks.

`train()` runs a fixed number of optimizer steps over a DataLoader, showing a progress bar (tqdm.auto),
measuring wall time and peak memory, evaluating on a callback, and checkpointing so that an interrupted
run resumes where it stopped. Checkpoints hold the trainable weights and the optimizer state in
safetensors (no pickles), plus a small JSON file with the step, the losses and the random states.
Notebooks may use Hugging Face's `Trainer` where it teaches better.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from ftkit.precision import model_device, precision_for, to_device

GIB = 1024 ** 3


def module_memory_gb(model: nn.Module | None) -> float:
    """GiB held by `model`'s parameters and buffers, in their stored dtypes (0 for None)."""
    if model is None:
        return 0.0
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / GIB


class PeakMemory:
    """Context manager measuring one run's peak memory in GiB: the weights of the model it trains (`model`)
    plus the most memory the run held beyond what was held when it began.

    Runs therefore compare by what they cost, not by what else a notebook had loaded before them. On CUDA
    the allocator's counters give it (peak allocated after a reset, less what was allocated at the start);
    on a CPU a thread samples the process's resident set size every `interval_s` seconds. `process_peak_gb`
    keeps the whole device's (CUDA) or process's (CPU) peak, which is what decides whether a run fits.
    """

    def __init__(self, device: str | torch.device = "cpu", interval_s: float = 0.05, model: nn.Module | None = None):
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.model_gb = module_memory_gb(model)
        self.peak_gb = self.process_peak_gb = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            import psutil

            process = psutil.Process(os.getpid())
            self._start = process.memory_info().rss
            peak = [self._start]

            def sample() -> None:
                while not self._stop.wait(self.interval_s):
                    peak[0] = max(peak[0], process.memory_info().rss)

            self._peak = peak
            self._thread = threading.Thread(target=sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            import psutil

            peak = max(self._peak[0], psutil.Process(os.getpid()).memory_info().rss)
        self.process_peak_gb = peak / GIB
        self.peak_gb = self.model_gb + max(0, peak - self._start) / GIB


def timed(function: Callable, *args, memory_of: nn.Module | None = None, **kwargs) -> tuple[object, float, float]:
    """Call `function`, return (its result, wall time in s, peak memory in GiB): for work that is not a
    `train()` run, such as a library trainer's `.train()`. Peak memory is `PeakMemory`'s, on the device of
    `memory_of` (the model the work runs) and counting its weights; without it, the CPU's increase only."""
    device = model_device(memory_of) if memory_of is not None else "cpu"
    began = time.perf_counter()
    with PeakMemory(device, model=memory_of) as peak:
        value = function(*args, **kwargs)
    return value, time.perf_counter() - began, peak.peak_gb


@dataclass
class TrainResult:
    """What a run produced: per-step losses, evaluations, wall time (s), peak memory (GiB)."""

    losses: list[tuple[int, float]] = field(default_factory=list)
    evaluations: list[dict] = field(default_factory=list)
    wall_time_s: float = 0.0
    peak_memory_gb: float = 0.0
    steps: int = 0
    resumed_from_step: int = 0

    def summary(self) -> str:
        last = self.evaluations[-1] if self.evaluations else {}
        shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k != "step" and isinstance(v, float))
        resumed = f" (resumed at step {self.resumed_from_step})" if self.resumed_from_step else ""
        return (f"{self.steps} steps{resumed} in {self.wall_time_s:.1f} s, peak memory "
                f"{self.peak_memory_gb:.2f} GiB" + (f"; last evaluation: {shown}" if shown else ""))


def model_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    """The model's own loss from the batch's `labels`: cross-entropy for a classifier, next-token
    cross-entropy for a causal LM (transformers shifts the labels inside the model)."""
    return model(**batch).loss


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that train, by name: all a checkpoint needs when the rest is frozen."""
    return {name: p.detach().contiguous().cpu() for name, p in model.named_parameters() if p.requires_grad}


def random_states(device: torch.device) -> dict[str, torch.Tensor]:
    """The random number generators' states: the CPU's, and the GPU's when the model is on one (sampling
    there, as `generate` does, draws from the GPU's generator)."""
    states = {"rng.torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["rng.cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_random_states(tensors: dict[str, torch.Tensor], device: torch.device) -> None:
    """Put back the states `random_states` saved, removing them from `tensors`."""
    torch.set_rng_state(tensors.pop("rng.torch"))
    cuda_state = tensors.pop("rng.cuda", None)
    if cuda_state is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda_state, device)


def save_checkpoint(folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                    step: int, result: TrainResult, scaler: torch.amp.GradScaler | None = None) -> None:
    """Write trainable weights and optimizer state (safetensors) and progress (JSON) into `folder`.

    With a `scaler` (fp16 training) its loss scale is saved too, so that a resumed run scales as the
    uninterrupted one would have.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), folder / "trainable.safetensors")
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.contiguous().cpu()
            else:
                scalars[f"{index}.{key}"] = value
    tensors.update(random_states(model_device(model)))
    save_file(tensors, folder / "optimizer.safetensors")
    progress = {"step": step, "param_groups": state["param_groups"], "scalars": scalars,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": scaler.state_dict() if scaler is not None else None,
                "losses": result.losses, "evaluations": result.evaluations,
                "wall_time_s": result.wall_time_s}
    tmp = folder / "progress.json.tmp"
    tmp.write_text(json.dumps(progress))
    tmp.replace(folder / "progress.json")  # the checkpoint counts only once progress.json is complete


def load_checkpoint(folder: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                    result: TrainResult, scaler: torch.amp.GradScaler | None = None) -> int:
    """Restore what `save_checkpoint` wrote; return the step to continue from (0 if there is none)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "progress.json").exists():
        return 0
    progress = json.loads((folder / "progress.json").read_text())
    weights = load_file(folder / "trainable.safetensors")
    missing = set(weights) - {n for n, p in model.named_parameters() if p.requires_grad}
    if missing:
        raise ValueError(f"The checkpoint in {folder} holds weights this model does not train: "
                         f"{sorted(missing)[:5]}... Delete the folder to start afresh.")
    model.load_state_dict(weights, strict=False)
    tensors = load_file(folder / "optimizer.safetensors")
    restore_random_states(tensors, model_device(model))
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *progress["scalars"].items()]:
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": progress["param_groups"]})
    if scheduler is not None and progress["scheduler"] is not None:
        scheduler.load_state_dict(progress["scheduler"])
    if scaler is not None and progress.get("scaler"):  # an fp32 or bf16 run's scaler is off and saves {}
        scaler.load_state_dict(progress["scaler"])
    result.losses = [tuple(x) for x in progress["losses"]]
    result.evaluations = progress["evaluations"]
    result.wall_time_s = progress["wall_time_s"]
    return progress["step"]


def repeat_epochs(batches: Iterable) -> Iterable:
    """The batches, epoch after epoch. A loader with `set_epoch` (accelerate's prepared loaders) is told each
    epoch's number first, so that it reshuffles, the same way on every process."""
    epoch = 0
    while True:
        if hasattr(batches, "set_epoch"):
            batches.set_epoch(epoch)
        yielded = False
        for batch in batches:
            yielded = True
            yield batch
        if not yielded:
            raise ValueError("The training data gave no batch: is the dataset empty?")
        epoch += 1


def _is_widget_bar(bar) -> bool:
    """Whether `bar` draws as a notebook widget (tqdm.auto's class in a Jupyter kernel is a subclass)."""
    from tqdm.notebook import tqdm_notebook

    return isinstance(bar, tqdm_notebook)


class TrainingRun:
    """What every training loop of the course shares, around the loop's own step: a progress bar, the wall
    time and peak memory of the run, and checkpoints that let an interrupted run resume.

        run = TrainingRun(steps, device=device, desc="training", model=model, optimizer=optimizer,
                          checkpoint_dir="ckpt")        # resumes from "ckpt" if a checkpoint is there
        with run:
            for step in run.steps():                    # from the first step not yet done
                loss = ...                              # the loop's own work
                run.result.losses.append((step, loss))
                run.show(loss=f"{loss:.3f}")
        run.result                                      # a TrainResult with wall time and peak memory

    After each step the bar advances, the wall time is updated and, with `checkpoint_dir`, the state is saved
    every `checkpoint_every` steps and after the last. Checkpoints need `model` and `optimizer`
    (`scheduler` and `scaler` are saved when given). `show_progress=False` hides the bar (other ranks).
    """

    def __init__(self, steps: int, *, device: str | torch.device, desc: str, model: nn.Module | None = None,
                 optimizer: torch.optim.Optimizer | None = None, scheduler=None,
                 scaler: torch.amp.GradScaler | None = None, checkpoint_dir: str | Path | None = None,
                 checkpoint_every: int | None = None, show_progress: bool = True):
        if checkpoint_dir and (model is None or optimizer is None):
            raise ValueError("A checkpointed run needs the model and the optimizer whose state it saves.")
        self.total, self.device, self.desc, self.show_progress = steps, torch.device(device), desc, show_progress
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every or max(1, math.ceil(steps / 10))
        self.result = TrainResult()
        self.start = (load_checkpoint(checkpoint_dir, model, optimizer, scheduler, self.result, scaler)
                      if checkpoint_dir else 0)
        self.result.resumed_from_step = self.start

    def __enter__(self) -> "TrainingRun":
        from tqdm.auto import tqdm

        self._elapsed_before, self._began = self.result.wall_time_s, time.perf_counter()
        self._peak = PeakMemory(self.device, model=self.model).__enter__()
        self._bar = tqdm(total=self.total, initial=self.start, desc=self.desc, disable=not self.show_progress)
        return self

    def steps(self) -> Iterable[int]:
        """The step numbers still to run, 1-based; the bookkeeping of each runs when the loop asks for the next."""
        for step in range(self.start + 1, self.total + 1):
            yield step
            self._bar.update(1)
            self.result.wall_time_s = self._elapsed_before + time.perf_counter() - self._began
            if self.checkpoint_dir and (step % self.checkpoint_every == 0 or step == self.total):
                save_checkpoint(self.checkpoint_dir, self.model, self.optimizer, self.scheduler, step, self.result,
                                self.scaler)

    def show(self, **postfix: str) -> None:
        """Figures shown beside the progress bar, e.g. `loss="0.412"`."""
        self._bar.set_postfix(**postfix)

    def __exit__(self, *exc) -> None:
        self._bar.close()
        if self.show_progress and _is_widget_bar(self._bar):
            # A notebook's widget bar is saved with the text it had when drawn ("0%"): where widgets do not
            # render (GitHub, nbviewer, a terminal reading the file) the final state must be there as text.
            print(self._bar)
        self._peak.__exit__(*exc)
        self.result.steps = self.total
        self.result.peak_memory_gb = self._peak.peak_gb


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   params: list[nn.Parameter], max_grad_norm: float | None) -> None:
    """Backward from `loss`, clip the gradients of `params` to `max_grad_norm` (None: no clipping), step.

    Through `scaler`: under fp16 the loss is scaled up before backward so that small gradients do not
    underflow, the gradients are unscaled before clipping so that the norm is in true units, and a step
    whose gradients overflowed is skipped (the scaler then lowers its scale). A disabled scaler (fp32,
    bf16) does plain backward, clip and step.
    """
    scaler.scale(loss).backward()
    if max_grad_norm is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def train(model: nn.Module, batches: Iterable, *, steps: int, optimizer: torch.optim.Optimizer | None = None,
          lr: float = 1e-4, scheduler=None, loss_fn: Callable = model_loss,
          evaluate: Callable[[nn.Module], dict] | None = None, eval_every: int | None = None,
          checkpoint_dir: str | Path | None = None, checkpoint_every: int | None = None,
          max_grad_norm: float | None = 1.0, desc: str = "training", device: str | None = None) -> TrainResult:
    """Train `model` for `steps` optimizer steps over `batches` (cycled as often as needed).

    - `loss_fn(model, batch)` returns the loss (default: the model's own, from `labels` in the batch).
    - `evaluate(model)` returns a dict of metrics; it runs every `eval_every` steps and at the end.
    - With `checkpoint_dir`, state is saved every `checkpoint_every` steps (default: every eval, else
      every tenth of the run) and at the end; calling `train` again with the same folder resumes.
    The optimizer defaults to AdamW over the trainable parameters at `lr`. Batches go to `device` (default:
    the model's); the forward pass and loss run under that device's precision policy (`ftkit.precision`:
    bf16 or fp16 autocast on a GPU, fp32 on a CPU), the weights stay fp32.
    """
    device = torch.device(device or model_device(model))
    precision = precision_for(device)
    scaler = precision.grad_scaler()
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("The model has no trainable parameters: unfreeze some or add an adapter first.")
    optimizer = optimizer or torch.optim.AdamW(trainable, lr=lr)
    run = TrainingRun(steps, device=device, desc=desc, model=model, optimizer=optimizer, scheduler=scheduler,
                      scaler=scaler, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every or eval_every)
    data = repeat_epochs(batches)
    # Skip the batches already seen so that a resumed run sees the same data as an uninterrupted one.
    for _ in range(run.start):
        next(data)
    model.train()
    with run:
        for step in run.steps():
            batch = to_device(next(data), device)
            with precision.autocast():
                loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"The loss became {loss.item()} at step {step}: lower the learning "
                                         f"rate (now {optimizer.param_groups[0]['lr']:.2g}) or check the data.")
            optimizer_step(loss, optimizer, scaler, trainable, max_grad_norm)
            if scheduler is not None:
                scheduler.step()
            run.result.losses.append((step, loss.item()))
            run.show(loss=f"{loss.item():.3f}")
            if evaluate is not None and ((eval_every and step % eval_every == 0) or step == steps):
                model.eval()
                with torch.no_grad():
                    run.result.evaluations.append({"step": step, **evaluate(model)})
                model.train()
    model.eval()
    return run.result
