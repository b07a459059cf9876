import pytest
import torch

from ftkit import memory

SEVEN_B = 6_738_415_616


def test_full_fine_tuning_costs_16_bytes_per_parameter_before_activations():
    for precision in ("fp32", "bf16"):
        estimate = memory.training_memory(SEVEN_B, "full", weight_precision=precision)
        assert estimate.total_gb * memory.GIB / SEVEN_B == pytest.approx(16.0)


def test_lora_and_qlora_cost_the_frozen_weights_plus_16_bytes_per_adapter_weight():
    lora = memory.training_memory(SEVEN_B, "lora", trainable_params=16_777_216)
    qlora = memory.training_memory(SEVEN_B, "qlora", trainable_params=16_777_216)
    assert lora.total_gb * memory.GIB == pytest.approx(SEVEN_B * 2 + 16_777_216 * 16)
    assert qlora.weights_gb * memory.GIB == pytest.approx(SEVEN_B * 4.127 / 8 + 16_777_216 * 4, rel=1e-4)
    assert qlora.total_gb < lora.total_gb < memory.training_memory(SEVEN_B, "full").total_gb


def test_bad_arguments_say_what_to_pass():
    with pytest.raises(ValueError, match="full, lora, qlora"):
        memory.training_memory(SEVEN_B, "dora")
    with pytest.raises(ValueError, match="trainable_params"):
        memory.training_memory(SEVEN_B, "lora")


def test_checkpointing_shrinks_activations():
    kwargs = dict(hidden=4096, layers=32, heads=32, batch=1, seq_len=512)
    assert memory.activation_memory_gb(**kwargs, gradient_checkpointing=True) < memory.activation_memory_gb(**kwargs) / 5


def test_fits_leaves_room_for_overhead():
    estimate = memory.training_memory(SEVEN_B, "qlora", trainable_params=16_777_216)
    assert memory.fits(estimate, 16) and not memory.fits(memory.training_memory(SEVEN_B, "full"), 80)


def test_training_plan_counts_the_canonical_sizes_and_says_what_is_missing():
    assert memory.training_plan("Llama-2-7B", "full")["parameters"] == 6_738_415_616
    assert memory.training_plan("TinyLlama-1.1B", "lora")["parameters"] == 1_100_048_384
    # LoRA r=16 on q, k, v, o of Llama-2-7B: 32 layers x 16 x (4096 + 4096) x 4 matrices
    assert memory.training_plan("Llama-2-7B", "qlora")["trainable"] == 16_777_216
    full = memory.training_plan("Llama-2-7B", "full", gpu="H100 (80 GB)")
    assert not full["fits"] and f"{full['needed_gb'] - 80:.1f} GiB missing" in full["verdict"]
    assert memory.qlora_plan("Llama-2-70B", gpu="T4 (16 GB)") == memory.training_plan("Llama-2-70B", "qlora", gpu="T4 (16 GB)")
    with pytest.raises(ValueError, match="choose one of"):
        memory.training_plan("Llama-9", "full")


def test_loaded_weights_gb_counts_quantized_linears_and_the_rest():
    model = torch.nn.Sequential(torch.nn.Embedding(100, 64), torch.nn.Linear(64, 128, bias=False))
    embedding, linear = 100 * 64, 64 * 128
    assert memory.loaded_weights_gb(model, "fp32") * memory.GIB == (embedding + linear) * 4
    expected = embedding * 4 + linear * memory.BYTES_PER_WEIGHT["nf4"]
    assert memory.loaded_weights_gb(model, "nf4") * memory.GIB == pytest.approx(expected)


def test_qlora_plan_counts_the_llama_adapter_and_says_what_is_missing():
    plan = memory.qlora_plan("Llama-2-7B", rank=16)
    assert plan["parameters"] == 6_738_415_616 and plan["trainable"] == 16_777_216 and plan["fits"]
    too_big = memory.qlora_plan("Llama-2-70B", gpu="T4 (16 GB)")
    assert not too_big["fits"]
    assert f"{too_big['needed_gb'] - 16:.1f} GiB missing" in too_big["verdict"]
    with pytest.raises(ValueError, match="Unknown model"):
        memory.qlora_plan("Llama-3-8B")
