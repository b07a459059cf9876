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
