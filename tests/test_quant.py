"""ftkit.quant against bitsandbytes: the same codebook, the same packed indices, the same errors."""
import bitsandbytes.functional as F
import pytest
import torch
from safetensors import safe_open

from ftkit import quant
from course import models


@pytest.fixture(scope="module")
def real_weights():
    """Three real SmolLM2 weight matrices (attention, MLP, the last layer), read straight from safetensors."""
    folder = models.cache_dir() / "models" / models.SMOLLM2
    names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.10.mlp.down_proj.weight",
             "model.layers.29.self_attn.v_proj.weight"]
    with safe_open(folder / "model.safetensors", framework="pt") as f:
        return [f.get_tensor(name).float() for name in names]


def test_codebook_equals_bitsandbytes_nf4_table():
    ours = quant.nf4_codebook()
    assert torch.equal(ours, quant.bitsandbytes_nf4_table())
    assert ours.numel() == 16 and (ours == 0).sum() == 1  # an exact zero
    assert (ours > 0).sum() == 8 and (ours < 0).sum() == 7  # asymmetric: one more positive level
    assert ours.min() == -1 and ours.max() == 1


def test_other_codebooks_are_sorted_and_span_the_range():
    for name in quant.CODEBOOKS:
        levels = quant.codebook(name)
        assert levels.numel() == 16 and torch.all(levels[1:] >= levels[:-1])
        assert levels.min() == -1 and levels.max() == 1
    # bitsandbytes' FP4 table (in bit order) holds the same values
    assert torch.allclose(quant.fp4_codebook(), F.get_4bit_type("fp4", device="cpu").sort().values)


@pytest.mark.parametrize("double_quant", [False, True])
def test_packed_indices_and_errors_agree_with_bitsandbytes(real_weights, double_quant):
    for w in real_weights:
        report = quant.compare_with_bitsandbytes(w, blocksize=64, double_quant=double_quant)
        assert report["index_agreement"] >= 0.999
        assert report["byte_agreement"] >= 0.999
        assert report["relative_error_difference"] <= 0.01


def test_pack_round_trip_and_bad_input():
    indices = torch.randint(0, 16, (1000,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(quant.unpack_4bit(quant.pack_4bit(indices)), indices)
    assert quant.pack_4bit(torch.tensor([1, 2])).item() == 0x12  # first index in the high nibble
    with pytest.raises(ValueError, match="even number"):
        quant.pack_4bit(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="0..15"):
        quant.pack_4bit(torch.tensor([16, 0]))


def test_dequantize_restores_shape_and_is_close():
    w = torch.randn(64, 128, generator=torch.Generator().manual_seed(0))
    for double_quant in (False, True):
        q = quant.quantize_nf4(w, blocksize=64, double_quant=double_quant)
        restored = quant.dequantize_nf4(q)
        assert restored.shape == w.shape and restored.dtype == w.dtype
        assert quant.quantization_error(w, q)["rms_error"] < 0.1 * w.std()
        assert q.packed.numel() == w.numel() // 2
    # values already on the grid come back exactly (absmax of each block = 1)
    grid = quant.nf4_codebook().repeat(8)
    assert torch.equal(quant.dequantize_nf4(quant.quantize_nf4(grid, blocksize=16)), grid)


def test_double_quant_shrinks_storage_as_bits_per_parameter_says():
    w = torch.randn(256 * 64 * 4, generator=torch.Generator().manual_seed(1))
    for double_quant in (False, True):
        q = quant.quantize_nf4(w, double_quant=double_quant)
        per_param = q.storage_bits() / w.numel()
        assert per_param == pytest.approx(quant.bits_per_parameter(64, double_quant), abs=0.01)
    assert quant.bits_per_parameter(64) == 4.5
    assert quant.bits_per_parameter(64, double_quant=True) == pytest.approx(4.127, abs=1e-3)


def test_bad_input_gets_clear_errors():
    with pytest.raises(TypeError, match="floating-point"):
        quant.quantize_nf4(torch.arange(128))
    with pytest.raises(ValueError, match="does not split into blocks of 64"):
        quant.quantize_nf4(torch.randn(100))
    with pytest.raises(ValueError, match="Unknown codebook"):
        quant.quantize_4bit(torch.randn(64), quant_type="nf3")


# A helper notebook 05 added to a shared module (batching): tested here with the notebook's other code.

def test_prompt_completion_loader_masks_the_prompt_and_padding():
    from ftkit.batching import prompt_completion_loader

    class Tokenizer:  # one token per character, eos 0, pad 1
        eos_token_id, pad_token_id = 0, 1

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text]}

    loader = prompt_completion_loader(["ab", "abcd"], ["X", "YZ"], Tokenizer(), batch_size=2, max_length=5)
    batch = next(iter(loader))
    assert batch["input_ids"].tolist() == [[97, 98, 88, 0, 1], [99, 100, 89, 90, 0]]  # long prompt cut at the start
    assert batch["labels"].tolist() == [[-100, -100, 88, 0, -100], [-100, -100, 89, 90, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    with pytest.raises(ValueError, match="no room"):
        prompt_completion_loader(["a"], ["long completion"], Tokenizer(), batch_size=1, max_length=4)


@pytest.mark.parametrize("bad, message", [(torch.empty(0), "empty"),
                                          (torch.tensor([1.0, float("nan")] * 32), "2?32 NaN or infinite"),
                                          (torch.tensor([1.0, float("inf")] * 32), "NaN or infinite")])
def test_empty_or_non_finite_weights_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        quant.quantize_nf4(bad, blocksize=64)
