"""Notebook 05 (QLoRA on a Llama model): the tables it shows (error by codebook, storage by scheme), whether a
weight matrix was stored on a 4-bit grid before, the bytes a loaded Hugging Face model really holds, and the
logit comparisons of a 4-bit model with full-precision ones (what a merge keeps of the adapter).

The 4-bit quantization itself (codebooks, blockwise absmax, packing, double quantization) is `ftkit.quant`.
"""
from __future__ import annotations

import torch
from torch import nn

from ftkit.precision import model_device, to_device
from ftkit.quant import CODEBOOKS, bits_per_parameter, quantization_error, quantize_4bit


def error_by_codebook(w: torch.Tensor, blocksize: int = 64) -> "pd.DataFrame":  # noqa: F821
    """RMS and mean absolute reconstruction error of `w` under NF4, FP4 and int4 (same blocks)."""
    import pandas as pd

    rows = [{"codebook": name, **quantization_error(w, quantize_4bit(w, blocksize, quant_type=name))}
            for name in CODEBOOKS]
    return pd.DataFrame(rows).set_index("codebook")


def distinct_values_per_block(w: torch.Tensor, blocksize: int = 32) -> torch.Tensor:
    """How many distinct values each block of `blocksize` consecutive weights holds (flattened order).

    A matrix that was stored at 4 bits once holds at most 16 per block even after dequantization to fp32:
    GGUF's Q4_1, the format of the offline SmolLM2 file, puts each block of 32 on 16 evenly spaced levels.
    A matrix never quantized holds up to `blocksize` (all different)."""
    blocks = w.detach().flatten().reshape(-1, blocksize)
    ordered = blocks.sort(dim=1).values
    return (ordered[:, 1:] != ordered[:, :-1]).sum(dim=1) + 1


def encoder_query_weight(name: str, layer: int = 0) -> torch.Tensor:
    """The query projection of one layer of a DistilBERT-architecture encoder, read straight from its
    checkpoint (no model is built: this works where memory is short). The course's converted encoder stores
    the bare model's names; a Hub checkpoint such as `distilbert-base-uncased` prefixes them `distilbert.`."""
    from course.models import checkpoint_tensor

    key = f"transformer.layer.{layer}.attention.q_lin.weight"
    try:
        return checkpoint_tensor(name, key)
    except KeyError:
        return checkpoint_tensor(name, f"distilbert.{key}")


def weight_history(w: torch.Tensor, blocksize: int = 32) -> str:
    """A sentence on whether `w` was stored on a 4-bit grid before, read off `distinct_values_per_block`."""
    most = int(distinct_values_per_block(w, blocksize).max())
    if most <= 16:
        return (f"every block of {blocksize} consecutive weights holds at most {most} distinct values: these weights "
                "were stored at 4 bits before (16 levels per block) and have only been dequantized since")
    return (f"blocks of {blocksize} consecutive weights hold up to {most} distinct values: these weights were never "
            "stored on a 4-bit grid")


def codebook_errors(matrices: dict[str, torch.Tensor], blocksize: int = 64) -> "pd.DataFrame":  # noqa: F821
    """`error_by_codebook` of several matrices in one long table (matrix, codebook, RMS error), with the RMS error
    relative to the matrix's own RMS, so that matrices of different scales compare."""
    import pandas as pd

    frames = []
    for label, w in matrices.items():
        errors = error_by_codebook(w, blocksize).reset_index()
        errors["relative_rms_error"] = errors["rms_error"] / w.float().pow(2).mean().sqrt().item()
        frames.append(errors.assign(matrix=label))
    return pd.concat(frames, ignore_index=True)[["matrix", "codebook", "rms_error", "relative_rms_error"]]


def storage_table(n_params: int, blocksize: int = 64) -> "pd.DataFrame":  # noqa: F821
    """Bits per parameter and the weights' memory (GiB) of an `n_params` model under each storage scheme."""
    import pandas as pd

    schemes = {"fp32": 32.0, "bf16 / fp16": 16.0, "int8 (LLM.int8)": 8.0 + 32 / 4096,
               "NF4": bits_per_parameter(blocksize), "NF4 + double quant": bits_per_parameter(blocksize, True)}
    rows = [{"scheme": name, "bits_per_parameter": round(bits, 3), "memory_gib": n_params * bits / 8 / 1024 ** 3}
            for name, bits in schemes.items()]
    return pd.DataFrame(rows).set_index("scheme").round(3)


def storage_bytes(model: nn.Module) -> int:
    """Bytes a loaded model holds in parameters, buffers and bitsandbytes' quantization constants.

    `model.get_memory_footprint()` counts parameters and buffers only; a 4-bit weight's absmax constants
    live in its `quant_state` (and, with double quantization, in a nested state), which this adds.
    """
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    total += sum(b.numel() * b.element_size() for b in model.buffers())
    for p in model.parameters():
        state = getattr(p, "quant_state", None)
        if state is None:
            continue
        total += state.absmax.numel() * state.absmax.element_size()
        if getattr(state, "state2", None) is not None:
            total += state.state2.absmax.numel() * state.state2.absmax.element_size() + 4  # + the offset
    for module in model.modules():  # 8-bit linear layers keep one fp32 scale per output row
        weight = getattr(module, "weight", None)
        scales = getattr(weight, "SCB", None)
        if isinstance(scales, torch.Tensor):
            total += scales.numel() * scales.element_size()
    return total


# ---------------------------------------------------------------------------------------------------
# Comparing a 4-bit model with full-precision ones
# ---------------------------------------------------------------------------------------------------

@torch.no_grad()
def logits_on(model: nn.Module, batch: dict) -> torch.Tensor:
    """`model`'s fp32 logits on `batch`'s real tokens, `(tokens, vocabulary)`, computed in training mode
    without gradients: bitsandbytes computes a 4-bit layer in training mode by dequantizing its weight to
    the compute dtype (fp32 here), the computation QLoRA trains. (In eval mode on a CPU with AVX-512 BF16 it
    switches to a faster bf16 kernel, which moves logits by a few tenths.) Dropout must be off (Llama has
    none; use `lora_dropout=0`) for two models' logits to compare. The batch goes to the model's device; the
    logits come back on the CPU."""
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}
    was = model.training
    model.train()
    logits = model(**to_device(inputs, model_device(model))).logits.float().cpu()
    model.train(was)
    mask = inputs.get("attention_mask")
    mask = torch.ones(logits.shape[:2], dtype=torch.bool) if mask is None else mask.cpu().bool()
    return logits[mask]


def max_logit_difference(model_a: nn.Module, model_b: nn.Module, batch: dict) -> float:
    """The largest absolute difference between two models' logits on `batch` (real tokens only; `logits_on`)."""
    return float((logits_on(model_a, batch) - logits_on(model_b, batch)).abs().max())


def merge_outcome(base: torch.Tensor, trained: torch.Tensor, merged: torch.Tensor) -> dict:
    """Where a merged model's logits land between the untrained base's and the trained model's (`logits_on`
    of each, same batch): the mean absolute distance to each, and the share of the adapter's change kept,
    1 - |merged - trained| / |base - trained| (1: all of it; 0 or less: none, back at the base or further)."""
    adapter = float((trained - base).abs().mean())
    to_trained, to_base = float((merged - trained).abs().mean()), float((merged - base).abs().mean())
    return {"adapter_change": adapter, "to_trained": to_trained, "to_base": to_base,
            "share_kept": 1 - to_trained / adapter if adapter > 0 else float("nan")}


def describe_merge(outcome: dict, label: str) -> str:
    """A sentence on a `merge_outcome`: how much of the adapter's change a merge kept."""
    kept = outcome["share_kept"]
    verdict = ("keeps most of what the adapter learned" if kept >= 0.75 else
               "rounds most of what the adapter learned away" if kept <= 0.25 else
               "keeps only part of what the adapter learned")
    return (f"The adapter moves the logits by {outcome['adapter_change']:.3f} on average. Merged into {label}, the model "
            f"lands {outcome['to_trained']:.3f} from the trained model and {outcome['to_base']:.3f} from the untrained "
            f"base: it keeps {max(kept, 0.0) or 0.0:.0%} of the adapter's change, so the merge {verdict}.")


# ---------------------------------------------------------------------------------------------------
# Exercises
# ---------------------------------------------------------------------------------------------------

def check_nf4_round_trip(nf4_round_trip) -> "Verdict":
    """Check a learner's `nf4_round_trip(w, blocksize, levels)`: NF4-quantize `w` blockwise and dequantize it
    again, against `ftkit.quant.quantize_nf4` and `dequantize_4bit`. Each test tensor's blocks differ in scale
    by up to a factor of a thousand, so one absmax for the whole tensor cannot pass; the levels are NF4's, so
    rounding on an evenly spaced grid cannot pass either."""
    from course.exercises import Case, check, fresh_generator
    from ftkit.quant import dequantize_4bit, nf4_codebook, quantize_nf4

    def cases():
        g = fresh_generator(505)
        levels = nf4_codebook()
        for shape, blocksize in [((4, 64), 64), ((6, 40), 16), ((512,), 64), ((3, 8, 16), 32)]:
            n_blocks = torch.Size(shape).numel() // blocksize
            block_scales = 10 ** (3 * torch.rand(n_blocks, 1, generator=g) - 2)  # 0.01 .. 10
            w = (torch.randn(n_blocks, blocksize, generator=g) * block_scales).reshape(shape)
            expected = dequantize_4bit(quantize_nf4(w, blocksize=blocksize))
            yield Case((w.clone(), blocksize, levels.clone()), expected)

    return check("NF4 quantize and dequantize (ftkit.quant)", nf4_round_trip, cases,
                 hint="split the flattened tensor into blocks of `blocksize` values, divide each block by its own "
                      "absolute maximum, replace each value by the nearest of the 16 levels, then multiply back by "
                      "the block's absmax and restore the shape.")


def check_bits_per_parameter(nf4_bits_per_parameter) -> "Verdict":
    """Check a learner's `nf4_bits_per_parameter(blocksize, double_quant, double_quant_blocksize)`: the bits
    NF4 stores per weight, with or without double quantization, against `ftkit.quant.bits_per_parameter`.
    The second-level blocks are small in some cases, so that their fp32 constants visibly count."""
    from course.exercises import Case, check
    from ftkit.quant import bits_per_parameter

    def cases():
        for blocksize, double_quant, dq_blocksize in [(64, False, 256), (64, True, 256), (128, True, 64),
                                                      (32, True, 16), (16, False, 8), (256, True, 32)]:
            expected = bits_per_parameter(blocksize, double_quant=double_quant, double_quant_blocksize=dq_blocksize)
            yield Case((blocksize, double_quant, dq_blocksize), expected)

    return check("bits per parameter (ftkit.quant.bits_per_parameter)", nf4_bits_per_parameter, cases, atol=1e-9,
                 rtol=1e-9,
                 hint="4 bits per index, plus each block's absmax shared by its `blocksize` weights: 32 bits "
                      "without double quantization, 8 bits with it, plus one fp32 constant per "
                      "`double_quant_blocksize` absmaxes.")
