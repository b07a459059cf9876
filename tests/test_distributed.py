"""Past one machine: two CPU processes (DDP on gloo, launched by torchrun) train exactly like one process.

One torchrun launch (two ranks, ~20 s on 2 cores) runs three trainings of tiny random models through the
real script: SFT (notebook 02's data and LoRA), notebook 04's LoRA classifier, and the classifier again with
DDP's gradient all-reduce switched off (the control: it shows that the replica check can fail). The single-process
references run in this process. Tolerances, and why:
- Replicas: bit-identical. DDP all-reduces the gradients, so every rank takes the same optimizer step.
  Without the all-reduce each rank follows its own half of the data and the weights drift apart.
- One process vs two, same global batch: losses within a relative 1e-5, weights within 1e-5. The two
  differ only by float32 rounding (partial sums added in another order, batches padded to other widths):
  measured 1e-7 relative on the losses, 7e-7 on the weights. Averaging each rank's own token mean
  instead of the global one, a real bug, moved the losses by 6e-4 and the weights by 6e-2 in this run.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from course import distributed
from course.results import REPO_ROOT

SFT = ["--task", "sft", "--tiny", "--steps", "6", "--lr", "1e-2", "--global-batch", "4", "--examples", "24"]
LORA = ["--task", "lora", "--tiny", "--steps", "4", "--lr", "1e-2", "--global-batch", "8", "--examples", "32",
        "--no-eval"]
RUNS = {"sft": SFT, "lora": LORA, "lora_no_sync": LORA + ["--no-sync"]}


def run_args(name: str, folder: Path) -> list[str]:
    return RUNS[name] + ["--out", str(folder / name), "--replica-dir", str(folder / name / "replicas")]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """The three runs on two processes, in one torchrun launch (the imports are paid once)."""
    folder = tmp_path_factory.mktemp("two-ranks")
    calls = "; ".join(f"run_task(parse_args({run_args(name, folder)!r}))" for name in RUNS)
    code = (f"from accelerate import PartialState; from course.distributed import parse_args, run_task; {calls}; "
            "PartialState().destroy_process_group()")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "--no-python", sys.executable, "-c", code]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder


def single_process(name: str, folder: Path) -> Path:
    """The same run in this process (world size 1), with accelerate's process-wide state reset after it."""
    from accelerate.state import AcceleratorState

    try:
        distributed.main(run_args(name, folder))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    return folder / name


def replicas(run: Path) -> list[dict[str, torch.Tensor]]:
    return [load_file(path) for path in sorted((run / "replicas").glob("rank*.safetensors"))]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize("name", ["sft", "lora"])
def test_ddp_replicas_identical_and_equal_to_one_process(two_ranks, tmp_path, name):
    run = json.loads((two_ranks / name / "run.json").read_text())
    assert (run["processes"], run["backend"], run["wrapper"]) == (2, "gloo", "DistributedDataParallel")
    assert run["per_process_batch"] * 2 == run["global_batch"]
    ranks = [json.loads((two_ranks / name / "replicas" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["first_batch_id_sum"] != ranks[1]["first_batch_id_sum"], "the ranks must see different data"
    rank0, rank1 = replicas(two_ranks / name)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0), "DDP replicas differ after training"

    single_run = single_process(name, tmp_path)
    single = json.loads((single_run / "run.json").read_text())
    assert single["processes"] == 1 and single["global_batch"] == run["global_batch"]
    assert single["losses"] == pytest.approx(run["losses"], rel=1e-5)
    assert single["losses"][-1] != pytest.approx(single["losses"][0], rel=1e-3), "the model must have learnt"
    (alone,) = replicas(single_run)
    assert max_difference(alone, rank0) < 1e-5
    assert (single_run / "adapter" / "adapter_model.safetensors").exists()


def test_without_gradient_sync_replicas_drift(two_ranks):
    rank0, rank1 = replicas(two_ranks / "lora_no_sync")
    assert max_difference(rank0, rank1) > 1e-3


def test_global_batch_splits_over_processes():
    assert distributed.per_process_batch(16, 2) == 8
    with pytest.raises(ValueError, match="multiple of 3"):
        distributed.per_process_batch(16, 3)


def test_arguments_are_checked():
    with pytest.raises(SystemExit):
        distributed.parse_args(["--qlora", "--task", "lora"])
    with pytest.raises(SystemExit):
        distributed.parse_args([])
    assert distributed.parse_args(["--task", "sft"]).task == "sft"


def test_real_model_path_starts(tmp_path):
    """The packaged MiniLM-as-DistilBERT with notebook 04's LoRA: one step and the test accuracy."""
    from accelerate.state import AcceleratorState

    try:
        distributed.main(["--task", "lora", "--steps", "1", "--examples", "16", "--out", str(tmp_path)])
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["model"] == "minilm-l6-as-distilbert" and len(run["losses"]) == 1
    assert 0 <= run["test_accuracy"] <= 1
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()


def test_scaling_doc_table_is_current():
    text = distributed.DOC.read_text()
    assert distributed.render_doc(text) == text, "run `python -m course.distributed --update-docs`"


def test_fsdp_shards_states_but_not_activations():
    one = distributed.per_gpu_memory("Llama-2-70B", "qlora", 1)
    eight = distributed.per_gpu_memory("Llama-2-70B", "qlora", 8)
    offload = distributed.per_gpu_memory("Llama-2-70B", "qlora", 8, offload=True)
    assert eight["sharded_gb"] == pytest.approx(one["sharded_gb"] / 8)
    assert eight["activations_gb"] == one["activations_gb"]
    assert offload["per_gpu_gb"] < eight["per_gpu_gb"] < one["per_gpu_gb"]
    assert distributed.per_gpu_memory("Llama-2-7B", "lora", 2)["per_gpu_gb"] > distributed.per_gpu_memory(
        "Llama-2-7B", "qlora", 2)["per_gpu_gb"]


def test_fsdp_recipe_config_is_what_accelerate_reads():
    """docs/fsdp_qlora.yaml through accelerate's own launcher: the environment its processes would get."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    config = REPO_ROOT / "docs" / "fsdp_qlora.yaml"
    args = launch_command_parser().parse_args(["--config_file", str(config), "-m", "course.distributed",
                                               "--task", "sft"])
    args, _, _ = _validate_launch_command(args)
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "1"
    assert (env["FSDP_USE_ORIG_PARAMS"], env["FSDP_CPU_RAM_EFFICIENT_LOADING"], env["FSDP_SYNC_MODULE_STATES"]) == (
        "false", "true", "true")
    assert (env["FSDP_AUTO_WRAP_POLICY"], env["FSDP_STATE_DICT_TYPE"]) == ("TRANSFORMER_BASED_WRAP", "FULL_STATE_DICT")
    doc = distributed.DOC.read_text()
    assert "fsdp_qlora.yaml" in doc and "bnb_4bit_quant_storage=torch.bfloat16" in doc
