"""Notebook 05's tables and measurements (`course.qlora_llama`)."""
import pytest
import torch

from course import qlora_llama


def test_nf4_beats_int4_and_fp4_on_normal_weights():
    w = torch.randn(4096, 64, generator=torch.Generator().manual_seed(2))
    errors = qlora_llama.error_by_codebook(w)["rms_error"]
    assert errors["nf4"] < errors["int4"] and errors["nf4"] < errors["fp4"]


def test_a_matrix_stored_at_4_bits_once_is_told_from_one_never_quantized():
    g = torch.Generator().manual_seed(0)
    never = torch.randn(64, 64, generator=g)
    # Q4_1's way: each block of 32 on 16 evenly spaced levels between its min and max, then back to fp32.
    blocks = never.reshape(-1, 32)
    low, high = blocks.min(1, keepdim=True).values, blocks.max(1, keepdim=True).values
    step = (high - low) / 15
    once = (low + torch.round((blocks - low) / step) * step).reshape(64, 64)
    assert int(qlora_llama.distinct_values_per_block(never).min()) == 32
    assert int(qlora_llama.distinct_values_per_block(once).max()) <= 16
    assert "were stored at 4 bits before" in qlora_llama.weight_history(once)
    assert "never stored on a 4-bit grid" in qlora_llama.weight_history(never)


def test_codebook_errors_are_relative_to_each_matrix():
    w = torch.randn(128, 64, generator=torch.Generator().manual_seed(1))
    table = qlora_llama.codebook_errors({"w": w, "ten w": 10 * w})
    assert list(table["matrix"].unique()) == ["w", "ten w"]
    by = table.set_index(["matrix", "codebook"])
    assert by.loc[("ten w", "nf4"), "rms_error"] == pytest.approx(10 * by.loc[("w", "nf4"), "rms_error"], rel=1e-4)
    assert by.loc[("ten w", "nf4"), "relative_rms_error"] == pytest.approx(by.loc[("w", "nf4"), "relative_rms_error"], rel=1e-4)


@pytest.mark.parametrize("merged_at, kept, word", [(1.0, 1.0, "keeps most"), (0.0, 0.0, "rounds most of what the adapter learned away"),
                                                   (0.5, 0.5, "keeps only part")])
def test_a_merge_is_placed_between_the_base_and_the_trained_model(merged_at, kept, word):
    base, trained = torch.zeros(3, 5), torch.ones(3, 5)
    outcome = qlora_llama.merge_outcome(base, trained, base + merged_at * (trained - base))
    assert outcome["share_kept"] == pytest.approx(kept) and outcome["adapter_change"] == 1.0
    assert word in qlora_llama.describe_merge(outcome, "the 4-bit base")


def test_storage_table_prices_each_scheme_by_its_bits():
    table = qlora_llama.storage_table(8 * 1024 ** 3)  # 8 Gi parameters: one GiB per bit
    assert table.loc["fp32", "memory_gib"] == 32 and table.loc["NF4", "bits_per_parameter"] == 4.5
    assert table.loc["NF4 + double quant", "memory_gib"] == pytest.approx(4.127, abs=1e-3)


def test_storage_bytes_counts_parameters_and_buffers():
    model = torch.nn.BatchNorm1d(4)  # 8 parameters, 9 buffer values (mean, variance, one int64 count)
    assert qlora_llama.storage_bytes(model) == 8 * 4 + 8 * 4 + 8


# Exercises: the checks catch the typical mistakes (stubs and solutions: tests/test_exercises.py)

def test_nf4_round_trip_with_one_absmax_for_the_whole_tensor_is_caught():
    def nf4_round_trip(w, blocksize, levels):
        absmax = w.abs().max()
        nearest = (w.unsqueeze(-1) / absmax - levels).abs().argmin(dim=-1)
        return levels[nearest] * absmax

    verdict = qlora_llama.check_nf4_round_trip(nf4_round_trip)
    assert not verdict.correct and "element" in verdict.message and "should be" in verdict.message


def test_nf4_round_trip_rounding_on_an_evenly_spaced_grid_is_caught():
    def nf4_round_trip(w, blocksize, levels):
        blocks = w.reshape(-1, blocksize)
        absmax = blocks.abs().amax(dim=1, keepdim=True)
        index = torch.round((blocks / absmax + 1) / 2 * 15).long()  # nearest of 16 evenly spaced steps
        return (levels[index] * absmax).reshape(w.shape)

    verdict = qlora_llama.check_nf4_round_trip(nf4_round_trip)
    assert not verdict.correct and "element" in verdict.message


def test_bits_per_parameter_without_the_second_level_constants_is_caught():
    def nf4_bits_per_parameter(blocksize, double_quant, double_quant_blocksize=256):
        return 4 + (8 if double_quant else 32) / blocksize

    verdict = qlora_llama.check_bits_per_parameter(nf4_bits_per_parameter)
    assert not verdict.correct and "should be 4.12695 but is 4.125" in verdict.message


def test_bits_per_parameter_counting_the_absmax_at_32_bits_under_double_quant_is_caught():
    def nf4_bits_per_parameter(blocksize, double_quant, double_quant_blocksize=256):
        return 4 + 32 / blocksize + (32 / (blocksize * double_quant_blocksize) if double_quant else 0)

    verdict = qlora_llama.check_bits_per_parameter(nf4_bits_per_parameter)
    assert not verdict.correct and "should be 4.12695" in verdict.message
