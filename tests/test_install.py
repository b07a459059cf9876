"""The library installs and works outside the repository; the course machinery says it needs a clone.

A plain (non-editable) `pip install` of the project into a folder outside the repository, then, from a
directory that is not the repository: a LoRA parameter count, an NF4 round trip and a PPO loss.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

USE_THE_LIBRARY = textwrap.dedent("""
    import json, torch
    from torch import nn
    import ftkit
    from ftkit import lora, ppo, quant

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))
    lora.add_lora(model, ["0"], r=4, alpha=8, trainable_modules=["2"])
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    weight = torch.randn(128, 64)
    restored = quant.dequantize_4bit(quant.quantize_nf4(weight, blocksize=64, double_quant=True))
    relative_error = ((restored - weight).norm() / weight.norm()).item()

    logprobs, old = torch.randn(2, 5), torch.randn(2, 5)
    loss = ppo.clipped_surrogate_loss(logprobs, old, torch.randn(2, 5), torch.ones(2, 5))[0]

    try:
        import course  # noqa: F401
        course_error = ""
    except ImportError as error:
        course_error = str(error)
    print(json.dumps({"file": ftkit.__file__, "trainable": trainable, "nf4_error": relative_error,
                      "ppo_loss": float(loss), "course_error": course_error}))
""")


def test_a_plain_install_outside_the_repository_runs_the_library(tmp_path):
    source = tmp_path / "source"
    for part in ("ftkit", "course", "pyproject.toml", "README.md"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, source / part, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                              if (ROOT / part).is_dir() else {}))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(site), str(source)], check=True)
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", USE_THE_LIBRARY], cwd=away, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    used = json.loads(done.stdout.strip().splitlines()[-1])

    assert Path(used["file"]).is_relative_to(site), f"ftkit was imported from {used['file']}, not the install"
    assert used["trainable"] == 4 * (64 + 32) + (32 * 2 + 2)  # A (4x64) and B (32x4) of rank 4, then the head
    assert used["nf4_error"] < 0.12
    assert used["ppo_loss"] == used["ppo_loss"]  # finite, not NaN
    assert "pip install -e ." in used["course_error"]
