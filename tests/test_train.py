import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from ftkit.train import (PeakMemory, TrainingRun, TrainResult, load_checkpoint, optimizer_step, save_checkpoint,
                         timed, train)


class TinyRegressor(nn.Module):
    """A model with the transformers calling convention: model(**batch).loss."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(8, 1)

    def forward(self, x, y):
        return type("Output", (), {"loss": nn.functional.mse_loss(self.layer(x).squeeze(-1), y)})()


def make_run(seed=0):
    torch.manual_seed(seed)
    x = torch.randn(64, 8)
    rows = [{"x": xi, "y": xi.sum()} for xi in x]
    loader = DataLoader(rows, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    return TinyRegressor(), loader


def test_training_lowers_the_loss_and_reports_time_and_memory():
    model, loader = make_run()
    result = train(model, loader, steps=40, lr=0.05, evaluate=lambda m: {"weight_norm": float(m.layer.weight.norm())},
                   eval_every=20)
    assert result.losses[-1][1] < result.losses[0][1] / 4
    assert [e["step"] for e in result.evaluations] == [20, 40]
    assert result.wall_time_s > 0 and result.peak_memory_gb > 0
    assert "40 steps" in result.summary()


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    model, loader = make_run()
    uninterrupted = train(model, loader, steps=30, lr=0.05)
    expected = model.layer.weight.detach().clone()

    model, loader = make_run()
    train(model, loader, steps=12, lr=0.05, checkpoint_dir=tmp_path, checkpoint_every=6)
    model, loader = make_run()  # a fresh process would start from scratch like this
    resumed = train(model, loader, steps=30, lr=0.05, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_step == 12
    assert torch.allclose(model.layer.weight, expected, atol=1e-6)
    assert [loss for _, loss in resumed.losses] == pytest.approx([loss for _, loss in uninterrupted.losses])
    assert {p.name for p in tmp_path.iterdir()} == {"trainable.safetensors", "optimizer.safetensors", "progress.json"}


def test_a_frozen_model_is_refused():
    model, loader = make_run()
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(model, loader, steps=1)


def test_a_diverging_loss_stops_with_advice():
    model, loader = make_run()
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train(model, loader, steps=50, lr=1e6, max_grad_norm=None)


def test_peak_memory_sees_a_large_allocation():
    with PeakMemory("cpu") as baseline:
        pass
    with PeakMemory("cpu") as peak:
        block = torch.ones(64 * 1024 * 1024)  # 256 MiB
        import time

        time.sleep(0.2)
        del block
    assert peak.peak_gb > baseline.peak_gb + 0.2


def test_peak_memory_is_the_runs_own_not_what_was_held_before():
    held = torch.ones(64 * 1024 * 1024)  # 256 MiB loaded before the run, e.g. another notebook model
    model = nn.Linear(1024, 1024)  # 4 MiB of weights
    with PeakMemory("cpu", model=model) as peak:
        pass
    assert peak.peak_gb < 0.1 < peak.process_peak_gb
    assert peak.peak_gb >= 4 / 1024
    del held


def test_timed_counts_the_weights_of_the_model_it_is_given():
    model = nn.Linear(1024, 1024)
    value, seconds, peak_gb = timed(lambda: 7, memory_of=model)
    assert value == 7 and seconds >= 0 and 4 / 1024 <= peak_gb < 0.1


def step_once(scaler, loss_factor=1.0, max_grad_norm=0.5):
    """The regressor's weight after one SGD step through `optimizer_step`, and the optimizer."""
    model, loader = make_run()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(**next(iter(loader))).loss * loss_factor
    optimizer_step(loss, optimizer, scaler, list(model.parameters()), max_grad_norm)
    return model.layer.weight.detach().clone(), model


def test_a_scaled_step_unscales_before_clipping_and_equals_the_plain_step():
    """fp16 training scales the loss by 2**16 before backward; unless the gradients are unscaled before
    clipping, the clip sees a norm 65536 times too large and the step shrinks by that much."""
    plain, _ = step_once(torch.amp.GradScaler("cpu", enabled=False))
    scaled, _ = step_once(torch.amp.GradScaler("cpu", init_scale=2.0 ** 16))
    assert torch.equal(scaled, plain)  # a power-of-two scale is undone exactly


def test_a_step_whose_scaled_gradients_overflow_is_skipped_and_the_scale_lowered():
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    untouched, _ = make_run()
    after, model = step_once(scaler, loss_factor=1e34)  # finite in fp32, infinite once scaled by 2**16
    assert torch.equal(after, untouched.layer.weight)
    assert scaler.get_scale() == 2.0 ** 15
    assert all(p.grad is None for p in model.parameters())


def test_a_checkpoint_keeps_the_loss_scale(tmp_path):
    model, _ = make_run()
    optimizer = torch.optim.AdamW(model.parameters())
    save_checkpoint(tmp_path, model, optimizer, None, 3, TrainResult(), torch.amp.GradScaler("cpu", init_scale=1024.0))
    resumed = torch.amp.GradScaler("cpu")
    assert load_checkpoint(tmp_path, model, optimizer, None, TrainResult(), resumed) == 3
    assert resumed.get_scale() == 1024.0


def test_the_scaffold_yields_each_step_once_and_measures_the_run(tmp_path):
    run = TrainingRun(3, device="cpu", desc="steps", model=nn.Linear(1024, 1024), show_progress=False)
    with run:
        seen = list(run.steps())
    assert seen == [1, 2, 3]
    assert run.result.steps == 3 and run.result.wall_time_s > 0 and run.result.peak_memory_gb >= 4 / 1024
    with pytest.raises(ValueError, match="needs the model and the optimizer"):
        TrainingRun(3, device="cpu", desc="steps", checkpoint_dir=tmp_path)


def test_a_notebook_bar_leaves_its_final_state_as_text(monkeypatch, capsys):
    import tqdm.auto
    import tqdm.notebook

    class KernelBar(tqdm.notebook.tqdm):  # what tqdm.auto gives in a Jupyter kernel: a subclass, defined elsewhere
        pass

    monkeypatch.setattr(tqdm.auto, "tqdm", KernelBar)
    run = TrainingRun(4, device="cpu", desc="steps")
    with run:
        for _ in run.steps():
            run.show(loss="0.5")
    printed = capsys.readouterr().out
    assert "steps: 100%" in printed and "4/4" in printed and "loss=0.5" in printed
