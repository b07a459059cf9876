"""How much memory training needs, before you try: weights, gradients, optimizer states, activations.

The estimates follow the usual accounting (Rajbhandari et al., ZeRO; Korthikanti et al., activation
recomputation): AdamW keeps two fp32 states per trainable parameter, mixed precision keeps an fp32
master copy, and a transformer layer stores about s*b*h*(34 + 5*a*s/h) bytes of 16-bit activations
(s sequence length, b batch, h hidden size, a heads), or about 2*s*b*h with gradient checkpointing.
They are estimates: frameworks add workspace, fragmentation and CUDA context (~0.5-1 GB).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

GIB = 1024 ** 3

# Bytes per stored weight. nf4 with double quantization costs 4 + 8/64 + 32/(64*256) bits (QLoRA paper).
BYTES_PER_WEIGHT = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0,
                    "nf4": (4 + 8 / 64 + 32 / (64 * 256)) / 8}
METHODS = ("full", "lora", "qlora")

# Memory of common GPUs, in GiB as the vendors sell them (rounded).
GPUS = {"T4 (16 GB)": 16, "RTX 4090 (24 GB)": 24, "A100 (40 GB)": 40, "A100 (80 GB)": 80,
        "H100 (80 GB)": 80, "H200 (141 GB)": 141}


@dataclass(frozen=True)
class MemoryEstimate:
    """Training memory by component, in GiB."""

    method: str
    weights_gb: float
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.gradients_gb + self.optimizer_gb + self.activations_gb

    def as_row(self) -> dict:
        return {**asdict(self), "total_gb": self.total_gb}


def activation_memory_gb(hidden: int, layers: int, heads: int, batch: int, seq_len: int,
                         gradient_checkpointing: bool = False, bytes_per_value: float = 2.0) -> float:
    """Activations kept for the backward pass, in GiB (Korthikanti et al. 2022, no tensor parallelism).

    Without checkpointing each layer keeps s*b*h*(34 + 5*a*s/h) bytes in 16-bit; with checkpointing only
    each layer's input (2*s*b*h bytes) plus one layer's full set during its recomputation.
    """
    s, b, h, a = seq_len, batch, hidden, heads
    per_layer = s * b * h * (34 + 5 * a * s / h) * bytes_per_value / 2
    if gradient_checkpointing:
        total = layers * s * b * h * bytes_per_value + per_layer
    else:
        total = layers * per_layer
    return total / GIB


def training_memory(n_params: int, method: str, trainable_params: int | None = None,
                    weight_precision: str | None = None, activations_gb: float = 0.0) -> MemoryEstimate:
    """Memory to train a model of `n_params` parameters by `method` (`full`, `lora` or `qlora`).

    - full: weights in `weight_precision` (default bf16) plus an fp32 master copy when that is 16-bit,
      gradients in the weight precision, AdamW's two fp32 states: 16 bytes per parameter in mixed
      precision (4 + 4 + 8 in plain fp32).
    - lora: frozen weights (default bf16) plus `trainable_params` adapter weights trained like `full`.
    - qlora: as lora with frozen weights in NF4 with double quantization (about 4.127 bits each).
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of: {', '.join(METHODS)}.")
    precision = weight_precision or ("nf4" if method == "qlora" else "bf16")
    if precision not in BYTES_PER_WEIGHT:
        raise ValueError(f"Unknown precision {precision!r}; choose one of: {', '.join(BYTES_PER_WEIGHT)}.")
    if method != "full" and trainable_params is None:
        raise ValueError(f"method={method!r} needs trainable_params (count them with "
                         "ftkit.params.count_parameters on the PEFT model, or lora_parameter_count).")
    trained = n_params if method == "full" else trainable_params
    frozen = 0 if method == "full" else n_params
    train_bytes = 2.0 if method == "full" and precision != "fp32" else 4.0  # trained weights' own dtype
    master = 4.0 if method == "full" and precision != "fp32" else 0.0
    weights = frozen * BYTES_PER_WEIGHT[precision] + trained * (
        BYTES_PER_WEIGHT[precision] if method == "full" else 4.0) + trained * master
    return MemoryEstimate(method=method, weights_gb=weights / GIB, gradients_gb=trained * train_bytes / GIB,
                          optimizer_gb=trained * 8.0 / GIB, activations_gb=activations_gb)


def fits(estimate: MemoryEstimate, gpu_memory_gb: float, overhead_gb: float = 1.0) -> bool:
    """True when the estimate plus a framework overhead fits in `gpu_memory_gb`."""
    return estimate.total_gb + overhead_gb <= gpu_memory_gb


def model_weights_gb(n_params: int, precision: str) -> float:
    """Memory of the weights alone at `precision`, in GiB."""
    return n_params * BYTES_PER_WEIGHT[precision] / GIB


def loaded_weights_gb(model, precision: str, keep: tuple[str, ...] = ("lm_head",),
                      other_precision: str = "fp32") -> float:
    """Predicted memory (GiB) of `model`'s weights once loaded with its linear layers at `precision`.

    This is how quantized loading works: every `nn.Linear` weight (except modules named in `keep`, such as
    the output head) is stored at `precision` (`int8`, `nf4`, ...), every other tensor (embeddings,
    norms, biases) stays at `other_precision`. `model` may be a meta model or a real fp32 one.
    """
    from torch import nn

    quantized = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and not any(part in name for part in keep):
            quantized.add(id(module.weight))
    total = 0.0
    for param in {id(p): p for p in model.parameters()}.values():  # tied weights once
        total += param.numel() * BYTES_PER_WEIGHT[precision if id(param) in quantized else other_precision]
    return total / GIB


# Llama-2 shapes for the planners (transformers' LlamaConfig arguments; 70B uses grouped-query attention).
# TinyLlama-1.1B is the Llama-2 architecture at 1B scale.
LLAMA2_SHAPES = {
    "TinyLlama-1.1B": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                           num_key_value_heads=4),
    "Llama-2-7B": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=32),
    "Llama-2-13B": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
                        num_key_value_heads=40),
    "Llama-2-70B": dict(hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64,
                        num_key_value_heads=8),
}


def training_plan(model: str = "Llama-2-7B", method: str = "qlora", rank: int = 16, seq_len: int = 512,
                  batch: int = 1, gpu: str = "T4 (16 GB)", gradient_checkpointing: bool = True,
                  overhead_gb: float = 1.0) -> dict:
    """Predicted memory to train a Llama-2-architecture size by `method` (`full`, `lora` with LoRA of `rank`
    on q, k, v, o, or `qlora`: the same LoRA on NF4 + double quant weights).

    Parameters are counted on the meta device; activations follow `activation_memory_gb` (16-bit).
    Returns the estimate by component (GiB), whether it fits `gpu` with `overhead_gb` to spare, and
    a sentence that says how much memory is missing when it does not.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if model not in LLAMA2_SHAPES:
        raise ValueError(f"Unknown model {model!r}; choose one of: {', '.join(LLAMA2_SHAPES)}.")
    if gpu not in GPUS:
        raise ValueError(f"Unknown GPU {gpu!r}; choose one of: {', '.join(GPUS)}.")
    shape = LLAMA2_SHAPES[model]
    with torch.device("meta"):
        n_params = sum(p.numel() for p in LlamaForCausalLM(LlamaConfig(**shape)).parameters())
    h, layers = shape["hidden_size"], shape["num_hidden_layers"]
    kv = h // shape["num_attention_heads"] * shape["num_key_value_heads"]
    adapter = layers * rank * (2 * (h + h) + 2 * (h + kv))  # q, o: h x h; k, v: h -> kv
    activations = activation_memory_gb(h, layers, shape["num_attention_heads"], batch, seq_len,
                                       gradient_checkpointing=gradient_checkpointing)
    trainable = n_params if method == "full" else adapter
    estimate = training_memory(n_params, method, trainable_params=trainable, activations_gb=activations)
    needed, available = estimate.total_gb + overhead_gb, GPUS[gpu]
    if needed <= available:
        verdict = f"fits: {needed:.1f} GiB of {available} GiB ({available - needed:.1f} GiB to spare)"
    else:
        verdict = (f"does not fit: needs {needed:.1f} GiB, {gpu} has {available} GiB, "
                   f"{needed - available:.1f} GiB missing")
    return {"model": model, "parameters": n_params, "trainable": trainable, **estimate.as_row(),
            "needed_gb": needed, "gpu_gb": available, "fits": needed <= available, "verdict": verdict}


def qlora_plan(model: str = "Llama-2-7B", rank: int = 16, seq_len: int = 512, batch: int = 1,
               gpu: str = "T4 (16 GB)", gradient_checkpointing: bool = True, overhead_gb: float = 1.0) -> dict:
    """Predicted memory of QLoRA (NF4 + double quant, LoRA of `rank` on q, k, v, o): `training_plan` with
    method `qlora`."""
    return training_plan(model, "qlora", rank=rank, seq_len=seq_len, batch=batch, gpu=gpu,
                         gradient_checkpointing=gradient_checkpointing, overhead_gb=overhead_gb)
