"""Notebook 05's tables and measurements (`course.qlora_llama`)."""
import pytest
import torch

from course import qlora_llama


def test_nf4_beats_int4_and_fp4_on_normal_weights():
    w = torch.randn(4096, 64, generator=torch.Generator().manual_seed(2))
    errors = qlora_llama.error_by_codebook(w)["rms_error"]
    assert errors["nf4"] < errors["int4"] and errors["nf4"] < errors["fp4"]


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
