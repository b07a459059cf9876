"""4-bit quantization from scratch: the NF4 codebook, blockwise absmax, packing, double quantization.

QLoRA (Dettmers et al. 2023) stores a frozen base model in 4-bit NormalFloat (NF4):

1. Split each weight matrix into blocks of 64 values; divide each block by its absolute maximum, so
   every value lies in [-1, 1] (the absmax is kept, one fp32 constant per block).
2. Replace each scaled value by the index of the nearest of 16 levels: NF4's levels are quantiles of the
   standard normal, so that each level is used about equally often by normally distributed weights.
3. Pack two 4-bit indices into one byte (first value in the high nibble, as bitsandbytes does).
4. Double quantization: the fp32 absmax constants cost 32/64 = 0.5 bits per weight; quantizing them to
   8 bits in blocks of 256 (after subtracting their mean) brings that to 8/64 + 32/(64*256) ~ 0.127.

`quantize_nf4`/`dequantize_nf4` do this in plain torch; `tests/test_quant.py` checks them against
`bitsandbytes.functional.quantize_4bit`. FP4 and plain int4 codebooks are here for comparison. For the
second-level constants bitsandbytes uses its 8-bit "dynamic" code; here they use plain symmetric int8,
which is simpler and changes the reconstruction error by far less than 1%.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

# The outermost quantile: halfway between 1 - 1/(2*15) and 1 - 1/(2*16), so that the extreme levels are
# finite; QLoRA's code uses it rounded to 7 decimals (0.9677083), and so do we, to the last bit.
NF4_OFFSET = round(0.5 * ((1 - 1 / (2 * 15)) + (1 - 1 / (2 * 16))), 7)
CODEBOOKS = ("nf4", "fp4", "int4")


def nf4_codebook(offset: float = NF4_OFFSET) -> torch.Tensor:
    """The 16 NF4 levels in [-1, 1], sorted, with an exact zero: shape (16,), float32.

    Asymmetric construction: 8 quantiles of N(0, 1) for the positive side (9 evenly spaced probabilities
    from `offset` down to 0.5, dropping 0.5) and 7 for the negative side (8 probabilities), plus 0. Each
    side is normalised by the largest level so that the range is exactly [-1, 1].
    """
    positive_p = torch.linspace(offset, 0.5, 9)[:-1].double()  # float32 grid, as bitsandbytes builds it
    negative_p = torch.linspace(offset, 0.5, 8)[:-1].double()
    positive = torch.special.ndtri(positive_p).float()  # inverse CDF of the standard normal
    negative = -torch.special.ndtri(negative_p).float()
    levels = torch.cat([positive, torch.zeros(1), negative]).sort().values
    return levels / levels.max()


def fp4_codebook() -> torch.Tensor:
    """bitsandbytes' FP4 levels (1 sign, 2 exponent, 1 mantissa bit), sorted and scaled to [-1, 1]: (16,).

    The magnitudes are 0, 0.0625, 2, 3, 4, 6, 8 and 12 (bitsandbytes' exponent bias), each with both
    signs; +0 and -0 are two codes with the same value, so FP4 has 15 distinct levels.
    """
    magnitudes = torch.tensor([0.0, 0.0625, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0]) / 12.0
    return torch.cat([-magnitudes, magnitudes]).sort().values


def int4_codebook() -> torch.Tensor:
    """Plain symmetric 4-bit integers -7..7 scaled to [-1, 1] (15 levels; the 16th code repeats 0): (16,)."""
    return torch.cat([torch.zeros(1), torch.arange(-7, 8, dtype=torch.float32) / 7]).sort().values


def codebook(name: str) -> torch.Tensor:
    """The sorted 16-entry codebook `nf4`, `fp4` or `int4`."""
    builders = {"nf4": nf4_codebook, "fp4": fp4_codebook, "int4": int4_codebook}
    if name not in builders:
        raise ValueError(f"Unknown codebook {name!r}; choose one of: {', '.join(CODEBOOKS)}.")
    return builders[name]()


def bits_per_parameter(blocksize: int = 64, double_quant: bool = False, bits: int = 4, absmax_bits: int = 32,
                       double_quant_bits: int = 8, double_quant_blocksize: int = 256) -> float:
    """Storage per weight in bits: the index plus its share of the block constants.

    Without double quantization: bits + absmax_bits / blocksize (4 + 32/64 = 4.5). With it: each absmax
    costs `double_quant_bits`, and each block of `double_quant_blocksize` absmaxes one fp32 constant:
    4 + 8/64 + 32/(64*256) ~ 4.127.
    """
    if double_quant:
        return bits + double_quant_bits / blocksize + absmax_bits / (blocksize * double_quant_blocksize)
    return bits + absmax_bits / blocksize


# ---------------------------------------------------------------------------------------------------
# Packing
# ---------------------------------------------------------------------------------------------------

def pack_4bit(indices: torch.Tensor) -> torch.Tensor:
    """Two 4-bit indices (0..15) per byte, the first in the high nibble: (n,) -> (n/2,) uint8."""
    if indices.numel() % 2:
        raise ValueError(f"Packing needs an even number of indices, got {indices.numel()}.")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) > 15):
        raise ValueError("4-bit indices must lie in 0..15.")
    q = indices.reshape(-1).to(torch.uint8)
    return (q[0::2] << 4) | q[1::2]


def unpack_4bit(packed: torch.Tensor) -> torch.Tensor:
    """The inverse of `pack_4bit`: (n/2,) uint8 -> (n,) int64 indices, on the packed tensor's device."""
    packed = packed.reshape(-1).to(torch.uint8)
    out = torch.empty(2 * packed.numel(), dtype=torch.int64, device=packed.device)
    out[0::2] = (packed >> 4).long()
    out[1::2] = (packed & 0x0F).long()
    return out


# ---------------------------------------------------------------------------------------------------
# Blockwise quantization
# ---------------------------------------------------------------------------------------------------

@dataclass
class Quantized4bit:
    """A 4-bit tensor: packed indices (n/2 uint8), per-block constants, and what undoes it.

    Without double quantization `absmax` holds one fp32 per block. With it, `absmax` holds one int8 per
    block and `absmax_scale` (fp32, one per group of `double_quant_blocksize` blocks) and `absmax_offset`
    (their mean, subtracted before quantizing) recover them.
    """

    packed: torch.Tensor
    absmax: torch.Tensor
    shape: torch.Size
    dtype: torch.dtype
    blocksize: int
    quant_type: str = "nf4"
    absmax_scale: torch.Tensor | None = None
    absmax_offset: float = 0.0
    double_quant_blocksize: int = 256

    @property
    def double_quant(self) -> bool:
        return self.absmax_scale is not None

    def indices(self) -> torch.Tensor:
        """The 4-bit codebook index of every value, in the tensor's flattened order: (n,) int64."""
        return unpack_4bit(self.packed)

    def storage_bits(self) -> int:
        """Bits actually stored: packed indices, block constants and second-level constants."""
        bits = self.packed.numel() * 8 + self.absmax.numel() * self.absmax.element_size() * 8
        if self.double_quant:
            bits += self.absmax_scale.numel() * 32 + 32  # the scales and the offset
        return bits


def _check_input(w: torch.Tensor, blocksize: int) -> None:
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        kind = w.dtype if isinstance(w, torch.Tensor) else type(w).__name__
        raise TypeError(f"Only floating-point tensors can be quantized, got {kind}. Convert with "
                        "`.float()` first (integer and bool tensors have no scale to preserve).")
    if blocksize < 2 or blocksize % 2:
        raise ValueError(f"blocksize must be an even number >= 2, got {blocksize}.")
    if w.numel() == 0:
        raise ValueError("The tensor is empty: there is nothing to quantize.")
    if not torch.isfinite(w).all():
        bad = (~torch.isfinite(w)).sum().item()
        raise ValueError(f"The tensor holds {bad:,} NaN or infinite values: a block's absmax would be NaN or inf and "
                         "every value of that block would be lost. Find where they came from (a diverged run?) first.")
    if w.numel() % blocksize:
        raise ValueError(f"A tensor of {w.numel():,} values does not split into blocks of {blocksize}: "
                         f"{w.numel() % blocksize} values would be left over. Choose a blocksize that "
                         f"divides the number of values (e.g. 64 for every Llama weight matrix).")


def absmax_blocks(w: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Blocks of `w` scaled into [-1, 1] and their absolute maxima: ((n/blocksize, blocksize), (n/blocksize,))."""
    blocks = w.detach().reshape(-1, blocksize).float()
    absmax = blocks.abs().amax(dim=1)
    scaled = (blocks * (1.0 / absmax.clamp(min=1e-38)).unsqueeze(1)).clamp(-1, 1)
    return scaled, absmax


def nearest_level(scaled: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Index of the nearest level for every value (levels sorted): compare with the midpoints."""
    midpoints = (levels[:-1] + levels[1:]) / 2
    return torch.bucketize(scaled.reshape(-1), midpoints)


def _quantize_constants(absmax: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Second-level quantization: absmax - mean in int8, one fp32 scale per `blocksize` constants."""
    offset = float(absmax.mean())
    centred = absmax - offset
    n = centred.numel()
    padded = torch.nn.functional.pad(centred, (0, (-n) % blocksize)).reshape(-1, blocksize)
    scale = padded.abs().amax(dim=1).clamp(min=1e-38) / 127
    codes = torch.round(padded / scale.unsqueeze(1)).clamp(-127, 127).to(torch.int8)
    return codes.reshape(-1)[:n], scale, offset


def _dequantize_constants(q: Quantized4bit) -> torch.Tensor:
    n = q.absmax.numel()
    padded = torch.nn.functional.pad(q.absmax.float(), (0, (-n) % q.double_quant_blocksize))
    values = padded.reshape(-1, q.double_quant_blocksize) * q.absmax_scale.unsqueeze(1)
    return values.reshape(-1)[:n] + q.absmax_offset


def quantize_4bit(w: torch.Tensor, blocksize: int = 64, quant_type: str = "nf4", double_quant: bool = False,
                  double_quant_blocksize: int = 256) -> Quantized4bit:
    """Blockwise absmax 4-bit quantization of a float tensor with the `quant_type` codebook, on its device."""
    _check_input(w, blocksize)
    levels = codebook(quant_type).to(w.device)
    scaled, absmax = absmax_blocks(w, blocksize)
    packed = pack_4bit(nearest_level(scaled, levels))
    q = Quantized4bit(packed=packed, absmax=absmax, shape=w.shape, dtype=w.dtype, blocksize=blocksize,
                      quant_type=quant_type, double_quant_blocksize=double_quant_blocksize)
    if double_quant:
        q.absmax, q.absmax_scale, q.absmax_offset = _quantize_constants(absmax, double_quant_blocksize)
    return q


def quantize_nf4(w: torch.Tensor, blocksize: int = 64, double_quant: bool = False) -> Quantized4bit:
    """NF4 quantization of `w` (any shape, float, numel divisible by `blocksize`): see `quantize_4bit`."""
    return quantize_4bit(w, blocksize=blocksize, quant_type="nf4", double_quant=double_quant)


def dequantize_4bit(q: Quantized4bit) -> torch.Tensor:
    """Back to a float tensor of the original shape and dtype: level[index] * absmax of its block."""
    absmax = _dequantize_constants(q) if q.double_quant else q.absmax
    levels = codebook(q.quant_type).to(q.packed.device)
    values = levels[q.indices()].reshape(-1, q.blocksize) * absmax.unsqueeze(1)
    return values.reshape(q.shape).to(q.dtype)


dequantize_nf4 = dequantize_4bit


def quantization_error(w: torch.Tensor, q: Quantized4bit | torch.Tensor) -> dict[str, float]:
    """Mean absolute and root-mean-square error of a reconstruction, in the weights' units."""
    restored = dequantize_4bit(q) if isinstance(q, Quantized4bit) else q
    diff = (w.float() - restored.float()).reshape(-1)
    return {"mean_abs_error": float(diff.abs().mean()), "rms_error": float(diff.pow(2).mean().sqrt())}


# ---------------------------------------------------------------------------------------------------
# Against bitsandbytes
# ---------------------------------------------------------------------------------------------------

def bitsandbytes_nf4_table() -> torch.Tensor:
    """bitsandbytes' own NF4 table (`get_4bit_type('nf4')`), on the CPU: (16,)."""
    from bitsandbytes.functional import get_4bit_type

    return get_4bit_type("nf4", device="cpu").float()


def compare_with_bitsandbytes(w: torch.Tensor, blocksize: int = 64, double_quant: bool = True) -> dict:
    """Quantize `w` both ways (NF4) and compare: share of equal packed bytes and indices, and both errors.

    Returns a dict with `index_agreement` and `byte_agreement` (0..1), each side's RMS error, and the
    relative difference of the errors.
    """
    import bitsandbytes.functional as F

    ours = quantize_nf4(w, blocksize=blocksize, double_quant=double_quant)
    packed, state = F.quantize_4bit(w.float(), blocksize=blocksize, quant_type="nf4",
                                    compress_statistics=double_quant)
    theirs = F.dequantize_4bit(packed, state).float()
    ours_error = quantization_error(w, ours)["rms_error"]
    theirs_error = quantization_error(w, theirs)["rms_error"]
    return {
        "values": w.numel(),
        "byte_agreement": float((packed.reshape(-1) == ours.packed).float().mean()),
        "index_agreement": float((unpack_4bit(packed) == ours.indices()).float().mean()),
        "rms_error_ours": ours_error,
        "rms_error_bitsandbytes": theirs_error,
        "relative_error_difference": abs(ours_error - theirs_error) / theirs_error,
    }
