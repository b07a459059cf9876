import pytest

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


def test_a_model_too_large_to_load_says_how_much_it_needs(monkeypatch):
    import torch

    from course.models import cache_dir

    monkeypatch.setattr(memory, "available_memory_gb", lambda device="cpu": 0.1)
    with pytest.raises(MemoryError, match=r"134,515,008 parameters: 0.5 GiB .* only 0.1 GiB"):
        memory.check_fits_for_loading(cache_dir() / "models" / "smollm2-135m-instruct", torch.float32)


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
