"""Training past one machine: notebook 04's LoRA and notebook 02's SFT on many processes, one script.

    python -m course.distributed --task lora                                  # one process
    torchrun --nproc_per_node 2 -m course.distributed --task lora             # two processes, DDP
    accelerate launch --multi_gpu --num_processes 2 -m course.distributed --task sft   # GPUs, via accelerate
    accelerate launch --config_file docs/fsdp_qlora.yaml -m course.distributed --task sft \\
        --model NousResearch/Llama-2-7b-hf --qlora --bf16 --gradient-checkpointing   # FSDP, several GPUs

The engine is Hugging Face accelerate, not a loop of our own: under a multi-process launch its
`Accelerator` wraps the model in torch's `DistributedDataParallel` (gloo on CPU, nccl on GPU), or in FSDP
or DeepSpeed when the launch's config file says so, and hands each process its own share of every batch.
What the script keeps from the notebooks: the model, the LoRA settings, the data, the optimizer and the
budget (`course.config.BUDGETS`) of the profile.

Two choices make N processes train exactly like one:
- The global batch is fixed (the notebook's `batch_size`); each of the N processes takes 1/N of it.
- A loss that averages over tokens must average over the tokens of the whole global batch: each process
  sums its terms and divides by the global count (an all-reduce of one number), so a process whose
  answers are short does not weigh as much as one whose answers are long.

Only rank 0 prints and saves (the adapter in safetensors and `run.json`). `--replica-dir` makes every
rank save its trainable weights too, which is how the tests check that the replicas agree.
`python -m course.distributed --update-docs` regenerates the per-GPU memory table of `docs/scaling.md`.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
from pathlib import Path

import torch

from ftkit.causal_lm import IGNORE_INDEX
from course.generated import replace_blocks
from course.results import REPO_ROOT

TASK_NOTEBOOKS = {"lora": "04_lora_distilbert", "sft": "02_supervised_instruction"}  # whose budget each task runs
ROLES = {"lora": "sequence_classifier", "sft": "causal_lm"}
LORA_TARGETS = ("q_lin", "v_lin")  # notebook 04's main variant: r=8, alpha=16 on the attention's q and v
LORA_RANK = 8
DOC = REPO_ROOT / "docs" / "scaling.md"


# ---------------------------------------------------------------------------------------------------
# Model and data of each task
# ---------------------------------------------------------------------------------------------------

def tiny_model(task: str, vocab_size: int, seed: int = 0):
    """A randomly initialised two-layer model of the task's architecture (DistilBERT classifier or Llama
    decoder), hidden size 32, without dropout: the real code path at a size that trains in seconds, and
    deterministic, so that runs on different numbers of processes can be compared step by step."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if task == "lora":
        return DistilBertForSequenceClassification(DistilBertConfig(
            vocab_size=vocab_size, dim=32, hidden_dim=64, n_layers=2, n_heads=2, num_labels=2, dropout=0.0,
            attention_dropout=0.0, seq_classif_dropout=0.0))
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True))


def build_model(task: str, name: str, budget, *, tiny: bool, seed: int, qlora: bool = False, bf16: bool = False,
                device_map=None):
    """`(peft model, tokenizer)` as the notebook builds them.

    lora: the sequence classifier with LoRA r=8 on q_lin and v_lin and the head trained (notebook 04).
    sft: the causal LM with LoRA of rank `budget.lora_r` on every projection (notebook 02); `qlora` loads
    the base in 4-bit NF4 with double quantization, stored in bf16 so that FSDP can shard it.
    `tiny` keeps the tokenizer and the LoRA settings but swaps in `tiny_model`'s random weights.
    """
    from course import lora_distilbert, models, self_supervised

    if task == "lora":
        if not tiny:
            return lora_distilbert.peft_classifier(name, LORA_TARGETS, r=LORA_RANK, seed=seed), _tokenizer(name, task)
        from peft import LoraConfig, get_peft_model

        tokenizer = _tokenizer(name, task)
        config = LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, target_modules=list(LORA_TARGETS),
                            task_type="SEQ_CLS", modules_to_save=list(lora_distilbert.HEAD_MODULES))
        return get_peft_model(tiny_model(task, len(tokenizer), seed), config), tokenizer
    if tiny:
        tokenizer = _tokenizer(name, task)
        base = tiny_model(task, len(tokenizer), seed)
    else:
        kwargs = {"device_map": device_map} if device_map is not None else {}
        if qlora:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_storage=torch.bfloat16)
        base, tokenizer = models.load_causal_lm(name, dtype=torch.bfloat16 if (bf16 or qlora) else torch.float32,
                                                **kwargs)
    torch.manual_seed(seed)  # LoRA's A matrices: the same on every rank (DDP also broadcasts rank 0's)
    return self_supervised.with_lora(base, r=budget.lora_r, alpha=2 * budget.lora_r), tokenizer


def _tokenizer(name: str, task: str):
    """The tokenizer of a packaged model, Hub id or folder (pad token = eos for a decoder without one)."""
    from transformers import AutoTokenizer

    from course.models import MINILM_DISTILBERT, SMOLLM2, ensure_pad_token, resolve_model_path

    packaged = MINILM_DISTILBERT if task == "lora" else SMOLLM2
    return ensure_pad_token(AutoTokenizer.from_pretrained(resolve_model_path(name, ROLES[task], packaged)))


def training_loader(task: str, tokenizer, budget, *, batch_size: int, examples: int | None, seed: int):
    """The notebook's training data as a shuffled (seeded) DataLoader of `batch_size` examples a batch.

    lora: movie-review sentences (`budget.n_train` of them); sft: the five instruction tasks mixed
    (`budget.sizes`). `examples` keeps only the first so many (after shuffling with the seed).
    """
    from ftkit import batching, instructions
    from course import data, supervised_instruction

    if task == "lora":
        movies = data.load_sentiment("movies", seed=0)
        n = min(budget.n_train, examples or budget.n_train)
        train_set = movies["train"].shuffle(seed=seed).select(range(n))
        return batching.classification_loader(train_set, tokenizer, batch_size=batch_size,
                                              max_length=budget.max_length, shuffle=True, seed=seed)
    tasks = supervised_instruction.build_tasks({name: tuple(n) for name, n in budget.sizes.items()}, seed=seed)
    rows = supervised_instruction.mix(tasks, "train", seed=seed)[:examples]
    return instructions.instruction_loader(rows, tokenizer, batch_size=batch_size, max_length=budget.max_length,
                                           seed=seed)


def evaluation_loader(tokenizer, budget, *, examples: int | None):
    """Notebook 04's test sentences (`budget.n_test`, or `examples`), unshuffled."""
    from ftkit import batching
    from course import data

    movies = data.load_sentiment("movies", seed=0)
    n = min(budget.n_test, examples or budget.n_test, len(movies["test"]))
    return batching.classification_loader(movies["test"].select(range(n)), tokenizer,
                                          batch_size=budget.eval_batch_size, max_length=budget.max_length)


def default_steps(task: str, budget, examples: int | None, global_batch: int) -> int:
    """The notebook's step count: one pass (times `epochs`) over the training set for lora, `steps` for sft."""
    if task == "sft":
        return budget.steps
    n = min(budget.n_train, examples or budget.n_train)
    return budget.epochs * math.ceil(n / global_batch)


# ---------------------------------------------------------------------------------------------------
# The loop: accelerate does the distribution, this does what the notebooks' `ftkit.train.train` does
# ---------------------------------------------------------------------------------------------------

def per_process_batch(global_batch: int, processes: int) -> int:
    """Each process's share of the global batch; an error when it does not split evenly."""
    if global_batch % processes:
        raise ValueError(f"The global batch of {global_batch} examples does not split over {processes} processes: "
                         f"pass --global-batch with a multiple of {processes}.")
    return global_batch // processes


def loss_terms(batch: dict, task: str) -> torch.Tensor:
    """How many terms the model's mean loss averages over in `batch`: its examples for a classifier, its
    labelled next tokens for a causal LM (a label at position 0 is predicted by nothing)."""
    labels = batch["labels"]
    if task == "lora":
        return torch.tensor(labels.shape[0], device=labels.device)
    return (labels[:, 1:] != IGNORE_INDEX).sum()


def summed_loss(model, batch: dict, task: str) -> torch.Tensor:
    """The sum, not the mean, of the loss terms in `batch` (0 for a batch with nothing labelled).

    transformers' causal-LM loss divides its sum by `num_items_in_batch` when given one: 1 gives the sum.
    """
    if task == "lora":
        return model(**batch).loss * batch["labels"].shape[0]
    return model(**batch, num_items_in_batch=1).loss


def sharded_accuracy(accelerator, model, loader) -> float:
    """Test accuracy (0..1) with the test set split over the processes and the predictions gathered
    (`gather_for_metrics` drops the examples accelerate repeats to even out the last batch)."""
    from ftkit.evaluate import evaluation_mode

    correct = total = 0
    with evaluation_mode(model):
        for batch in loader:
            labels = batch.pop("labels")
            predictions, labels = accelerator.gather_for_metrics((model(**batch).logits.argmax(-1), labels))
            correct += (predictions == labels).sum().item()
            total += labels.numel()
    return correct / total


def run_steps(accelerator, model, optimizer, scheduler, loader, *, task: str, steps: int, sync: bool = True):
    """`steps` optimizer steps of the prepared model over the prepared loader, as `ftkit.train.train` takes
    them (AdamW, gradients clipped to norm 1). Returns the global loss of each step, the sum of the first
    batch's token ids (it differs between ranks: each sees its own share), the wall time (s) and the peak
    memory (GiB) of this process's run (its model's weights and what training added). `sync=False` skips
    DDP's gradient all-reduce: a demonstration only."""
    from ftkit.train import TrainingRun, repeat_epochs

    world = accelerator.num_processes
    losses, first_batch = [], None
    data = repeat_epochs(loader)
    model.train()
    run = TrainingRun(steps, device=accelerator.device, desc=f"{task} x{world}", model=model,
                      show_progress=accelerator.is_main_process)
    with run:
        for _ in run.steps():
            batch = next(data)
            if first_batch is None:
                first_batch = int(batch["input_ids"].sum())
            n_local = loss_terms(batch, task)
            n_global = accelerator.reduce(n_local, "sum")
            with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                total = summed_loss(model, batch, task)
                # DDP averages the N gradients: times N over the global count gives the global mean's gradient.
                accelerator.backward(total * world / n_global)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)  # on the all-reduced gradients
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append((accelerator.reduce(total.detach(), "sum") / n_global).item())
            run.show(loss=f"{losses[-1]:.3f}")
    return losses, first_batch, run.result.wall_time_s, run.result.peak_memory_gb


def run_task(args: argparse.Namespace) -> dict:
    """Train one task as the launch asks (one process, DDP, FSDP) and return the run's summary (all ranks).

    The process group stays open, so that one process may call `run_task` several times (the tests do);
    `main` closes it.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedType
    from safetensors.torch import save_file

    from course import config
    from ftkit.params import count_parameters
    from ftkit.train import trainable_state

    notebook = TASK_NOTEBOOKS[args.task]
    # `cpu=True` on a machine without CUDA: accelerate then runs several processes on gloo (MULTI_CPU).
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    cfg = config.setup(notebook, profile=args.profile, seed=args.seed, verbose=accelerator.is_main_process)
    budget, world = cfg.budget, accelerator.num_processes
    global_batch = args.global_batch or budget.batch_size
    per_rank = per_process_batch(global_batch, world)
    steps = args.steps or default_steps(args.task, budget, args.examples, global_batch)
    lr = args.lr or (budget.lora_lr if args.task == "lora" else budget.lr)
    name = args.model or cfg.model_name(ROLES[args.task])
    fsdp = accelerator.distributed_type == DistributedType.FSDP
    # A 4-bit model is placed on its GPU when it loads; under FSDP it loads on the CPU and FSDP moves shards.
    device_map = {"": accelerator.local_process_index} if args.qlora and not fsdp else None

    model, tokenizer = build_model(args.task, name, budget, tiny=args.tiny, seed=args.seed, qlora=args.qlora,
                                   bf16=args.bf16, device_map=device_map)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    counted = count_parameters(model)
    loader = training_loader(args.task, tokenizer, budget, batch_size=per_rank, examples=args.examples,
                             seed=args.seed)
    if fsdp:  # LoRA layers get FSDP units of their own; QLoRA's mixed precision follows the bf16 storage
        from transformers.distributed.fsdp import update_fsdp_plugin_peft

        update_fsdp_plugin_peft(model, accelerator)
    model = accelerator.prepare(model)  # model first: under FSDP the optimizer must see the sharded parameters
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    scheduler = None
    if args.task == "sft":  # notebook 02's schedule. Not given to accelerate, which would step it N times a step.
        from transformers import get_linear_schedule_with_warmup

        scheduler = get_linear_schedule_with_warmup(optimizer, max(1, steps // 10), steps)
    optimizer, loader = accelerator.prepare(optimizer, loader)

    losses, first_batch, wall_time_s, peak_gb = run_steps(accelerator, model, optimizer, scheduler, loader,
                                                          task=args.task, steps=steps, sync=not args.no_sync)
    accuracy = None
    if args.task == "lora" and not args.no_eval:
        accuracy = sharded_accuracy(accelerator, model, accelerator.prepare(evaluation_loader(tokenizer, budget,
                                                                                              examples=args.examples)))
    out = Path(args.out or REPO_ROOT / "build" / "distributed" / args.task)
    if args.replica_dir:  # every rank: its own copy of the trained weights, to compare
        replicas = Path(args.replica_dir)
        replicas.mkdir(parents=True, exist_ok=True)
        rank = accelerator.process_index
        save_file(trainable_state(accelerator.unwrap_model(model)), replicas / f"rank{rank}.safetensors")
        (replicas / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "losses": losses,
                                                               "first_batch_id_sum": first_batch}))
    state_dict = accelerator.get_state_dict(model)  # a collective under FSDP: every rank takes part
    summary = {
        "task": args.task, "notebook": notebook, "model": "tiny random " + name if args.tiny else name,
        "processes": world, "distributed_type": str(accelerator.distributed_type).split(".")[-1],
        "backend": accelerator.state.backend, "wrapper": type(model).__name__, "global_batch": global_batch,
        "per_process_batch": per_rank, "steps": steps, "lr": lr, "losses": losses, "test_accuracy": accuracy,
        "trainable_params": counted.trainable, "total_params": counted.total, "wall_time_s": wall_time_s,
        "peak_memory_gb_rank0": peak_gb, "profile": cfg.profile, "hardware": cfg.hardware,
    }
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(out / "adapter", state_dict=state_dict)
        (out / "run.json").write_text(json.dumps(summary, indent=1) + "\n")
        shown = f", test accuracy {accuracy:.1%}" if accuracy is not None else ""
        accelerator.print(f"{world} process(es), {summary['wrapper']} on {summary['backend'] or 'one process'}: "
                          f"{steps} steps of {global_batch} examples in {wall_time_s:.1f} s, loss "
                          f"{losses[0]:.3f} -> {losses[-1]:.3f}{shown}; saved {out / 'adapter'}")
    accelerator.wait_for_everyone()
    return summary


# ---------------------------------------------------------------------------------------------------
# Memory per GPU, for the FSDP recipe in docs/scaling.md
# ---------------------------------------------------------------------------------------------------

FSDP_GPUS = (2, 4, 8)
TABLE_MODELS = ("Llama-2-7B", "Llama-2-13B", "Llama-2-70B")
FEWEST_FOR_GB = 24  # the GPU size of the table's last sentence: a consumer card (RTX 4090)
TABLE_SETTINGS = {"rank": 16, "seq_len": 1024, "batch": 1, "gradient_checkpointing": True, "overhead_gb": 1.0}


def per_gpu_memory(model: str, method: str, n_gpus: int = 1, *, offload: bool = False, rank: int = 16,
                   seq_len: int = 1024, batch: int = 1, gradient_checkpointing: bool = True,
                   overhead_gb: float = 1.0) -> dict:
    """Predicted training memory on each GPU (GiB) of LoRA (`lora`: bf16 base) or QLoRA (`qlora`: NF4 base)
    of a Llama-2 size, with LoRA of `rank` on q, k, v, o, from `ftkit.memory`.

    - `n_gpus=1`: one GPU, or DDP (each GPU holds a full replica).
    - `n_gpus>1`: FSDP full sharding. Weights, gradients and optimizer states are split N ways; each GPU
      also holds the unsharded root (embeddings, head, final norm; bf16) and two decoder layers gathered
      at once (the one computing and the one prefetched). `offload`: the shards live in CPU memory.
    Activations (per GPU's micro-batch of `batch` x `seq_len`) and `overhead_gb` are not sharded.
    """
    from ftkit.memory import BYTES_PER_WEIGHT, GIB, LLAMA2_SHAPES

    if method not in ("lora", "qlora"):
        raise ValueError(f"Unknown method {method!r}; choose lora or qlora.")
    plan = _plan(model, method, rank, seq_len, batch, gradient_checkpointing)
    states_gb = plan["weights_gb"] + plan["gradients_gb"] + plan["optimizer_gb"]
    if n_gpus == 1:
        gathered_gb, sharded_gb = 0.0, states_gb
    else:
        per_layer = _decoder_layer_parameters(model)
        root = plan["parameters"] - LLAMA2_SHAPES[model]["num_hidden_layers"] * per_layer
        precision = "nf4" if method == "qlora" else "bf16"
        gathered_gb = (root * BYTES_PER_WEIGHT["bf16"] + 2 * per_layer * BYTES_PER_WEIGHT[precision]) / GIB
        sharded_gb = 0.0 if offload else states_gb / n_gpus
    total = sharded_gb + gathered_gb + plan["activations_gb"] + overhead_gb
    return {"model": model, "method": method, "gpus": n_gpus, "offload": offload, "sharded_gb": sharded_gb,
            "gathered_gb": gathered_gb, "activations_gb": plan["activations_gb"], "overhead_gb": overhead_gb,
            "per_gpu_gb": total, "cpu_offload_gb": states_gb / n_gpus if offload else 0.0}


@functools.lru_cache(maxsize=None)
def _plan(model: str, method: str, rank: int, seq_len: int, batch: int, gradient_checkpointing: bool) -> dict:
    """`ftkit.memory.training_plan` (parameters counted on the meta device), computed once per setting."""
    from ftkit.memory import training_plan

    return training_plan(model, method, rank=rank, seq_len=seq_len, batch=batch,
                         gradient_checkpointing=gradient_checkpointing)


@functools.lru_cache(maxsize=None)
def _decoder_layer_parameters(model: str) -> int:
    """Parameters of one decoder layer of a Llama-2 size, counted on the meta device."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftkit.memory import LLAMA2_SHAPES

    with torch.device("meta"):
        layer = LlamaForCausalLM(LlamaConfig(**{**LLAMA2_SHAPES[model], "num_hidden_layers": 1})).model.layers[0]
    return sum(p.numel() for p in layer.parameters())


def per_gpu_memory_table(models: tuple[str, ...] = TABLE_MODELS, gpus: tuple[int, ...] = FSDP_GPUS, **settings):
    """`per_gpu_memory` for each model, LoRA and QLoRA, on one GPU (or DDP), FSDP on each of `gpus`, and FSDP
    with CPU offload on the most GPUs: a DataFrame, one row per setting (GiB)."""
    import pandas as pd

    settings = {**TABLE_SETTINGS, **settings}
    rows = []
    for model in models:
        for method in ("lora", "qlora"):
            rows.append(per_gpu_memory(model, method, 1, **settings))
            rows += [per_gpu_memory(model, method, n, **settings) for n in gpus]
            rows.append(per_gpu_memory(model, method, gpus[-1], offload=True, **settings))
    return pd.DataFrame(rows)


def _smallest_gpu(gib: float) -> str:
    from ftkit.memory import GPUS

    fitting = sorted((size, name) for name, size in GPUS.items() if gib <= size)
    return f"{fitting[0][0]} GB" if fitting else "none listed"


def memory_table_markdown() -> str:
    """The per-GPU memory table of docs/scaling.md, computed now by `per_gpu_memory_table`."""
    table = per_gpu_memory_table()
    gpus = sorted(set(table.gpus) - {1})
    header = (["model", "method", "1 GPU or DDP"] + [f"FSDP, {n} GPUs" for n in gpus]
              + [f"FSDP, {gpus[-1]} GPUs + CPU offload"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    labels = {"lora": "LoRA (bf16 base)", "qlora": "QLoRA (NF4 base)"}
    fewest = []
    for (model, method), rows in table.groupby(["model", "method"], sort=False):
        cells = [f"{row.per_gpu_gb:.1f} ({_smallest_gpu(row.per_gpu_gb)})" for row in rows.itertuples()]
        lines.append(f"| {model} | {labels[method]} | " + " | ".join(cells) + " |")
        fitting = rows[~rows.offload & (rows.per_gpu_gb <= FEWEST_FOR_GB)].gpus
        fewest.append(f"{model} {method}: {fitting.min() if len(fitting) else 'more than ' + str(gpus[-1])}")
    s = TABLE_SETTINGS
    most = table.loc[table.cpu_offload_gb.idxmax()]
    lines.append("")
    lines.append(f"GiB per GPU, with the smallest GPU of `ftkit.memory.GPUS` that holds it in brackets. LoRA of rank "
                 f"{s['rank']} on q, k, v, o; micro-batch {s['batch']} x {s['seq_len']} tokens per GPU; gradient "
                 f"checkpointing; {s['overhead_gb']:.0f} GiB framework overhead. With CPU offload each process keeps "
                 f"its shards in CPU memory instead: up to {most.cpu_offload_gb:.1f} GiB per process "
                 f"({most.model} {labels[most.method]}, {most.gpus} processes).")
    lines.append("")
    lines.append(f"Fewest GPUs of {FEWEST_FOR_GB} GB that the estimate says suffice, without offload: "
                 + "; ".join(fewest) + ".")
    return "\n".join(lines)


def render_doc(text: str) -> str:
    """`text` (docs/scaling.md) with its generated per-GPU memory table replaced by the current one."""
    return replace_blocks(text, {"per-gpu-memory": memory_table_markdown}, DOC.name)


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASK_NOTEBOOKS), help="lora: notebook 04; sft: notebook 02")
    parser.add_argument("--profile", choices=["smoke", "cpu", "gpu"], help="budget profile (default: FTKIT_PROFILE)")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: the notebook's)")
    parser.add_argument("--global-batch", type=int,
                        help="examples per step over all processes (default: the notebook's)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the notebook's)")
    parser.add_argument("--examples", type=int, help="train (and, for lora, test) on only this many examples")
    parser.add_argument("--model", help="a packaged model, Hub id or folder (default: the notebook's)")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model of the same architecture (tests)")
    parser.add_argument("--qlora", action="store_true", help="sft on a GPU: load the base in 4-bit NF4")
    parser.add_argument("--bf16", action="store_true", help="load the base model in bfloat16")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in backward")
    parser.add_argument("--no-eval", action="store_true", help="lora: skip the test accuracy")
    parser.add_argument("--no-sync", action="store_true",
                        help="skip DDP's gradient all-reduce (a demonstration: the replicas drift apart)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="rank 0 writes run.json and adapter/ here (default: build/distributed/TASK)")
    parser.add_argument("--replica-dir", help="every rank writes its trained weights here as rankN.safetensors")
    parser.add_argument("--update-docs", action="store_true", help="regenerate the table in docs/scaling.md and exit")
    args = parser.parse_args(argv)
    if not args.update_docs and args.task is None:
        parser.error("--task is required (lora or sft), unless --update-docs")
    if args.qlora and args.task != "sft":
        parser.error("--qlora applies to --task sft")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.update_docs:
        DOC.write_text(render_doc(DOC.read_text()))
        print(f"updated {DOC}")
        return 0
    from accelerate import PartialState

    run_task(args)
    PartialState().destroy_process_group()  # the process group lives as long as the process: several
    return 0                                # `train` calls in one process share it


if __name__ == "__main__":
    raise SystemExit(main())
