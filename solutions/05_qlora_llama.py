"""Solutions to notebook 05's exercises (QLoRA: NF4 and double quantization)."""
import torch


def nf4_round_trip(w, blocksize, levels):
    blocks = w.reshape(-1, blocksize)                       # consecutive values of the flattened tensor
    absmax = blocks.abs().amax(dim=1, keepdim=True)         # one constant per block, not per tensor
    scaled = blocks / absmax                                # every value now in [-1, 1]
    nearest = (scaled.unsqueeze(-1) - levels).abs().argmin(dim=-1)  # index 0..15 of the closest NF4 level
    return (levels[nearest] * absmax).reshape(w.shape)      # dequantize: level times the block's absmax


def nf4_bits_per_parameter(blocksize, double_quant, double_quant_blocksize=256):
    if not double_quant:
        return 4 + 32 / blocksize                           # index + its share of one fp32 absmax
    # the absmax itself in 8 bits, plus one fp32 constant per double_quant_blocksize absmaxes
    return 4 + 8 / blocksize + 32 / (blocksize * double_quant_blocksize)
