import pytest
import torch
from torch import nn

from ftkit import params
from course.models import meta_model


def test_lora_count_of_a_square_layer():
    assert params.lora_parameter_count(1000, 1000, 2) == 4_000
    with pytest.raises(ValueError):
        params.lora_parameter_count(1000, 1000, 0)


def test_distilbert_lora_matches_peft_and_explains_its_total():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(meta_model("distilbert-base-uncased", num_labels=2),
                           LoraConfig(r=4, lora_alpha=32, target_modules=["q_lin"], task_type="SEQ_CLS"))
    ours, naive = params.count_parameters(model), params.naive_count(model)
    trainable, total = model.get_nb_trainable_parameters()
    assert ours.trainable == trainable == 628_994  # 36,864 LoRA + 592,130 head
    assert naive.total == total == 67_584_004      # peft counts the head and its saved copy
    assert ours.total == 66_955_010 + 36_864       # the model as it computes: head once


def test_4bit_llama_share_is_counted_on_true_parameters():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(params.simulate_4bit(meta_model("llama-2-7b")),
                           LoraConfig(r=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    ours, naive = params.count_parameters(model), params.naive_count(model)
    assert ours.trainable == 16_777_216
    assert ours.total == 6_738_415_616 + 16_777_216
    assert round(100 * ours.share, 3) == 0.248
    assert naive.total == 3_517_190_144 and round(100 * naive.share, 3) == 0.477


def test_real_4bit_weights_count_as_their_unpacked_size():
    from transformers import BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=256)
    torch.manual_seed(0)
    full = LlamaForCausalLM(config)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        full.save_pretrained(folder)
        quantized = LlamaForCausalLM.from_pretrained(
            folder, quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=torch.float32))
    assert any(params.is_packed_4bit(p) for p in quantized.parameters())
    assert params.count_parameters(quantized).total == params.count_parameters(full).total
    assert params.naive_count(quantized).total < params.count_parameters(full).total


def test_parameter_table_adds_up():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    table = params.parameter_table(model, depth=1)
    assert table["total"].sum() == params.count_parameters(model).total == 15 + 8
    assert dict(zip(table["module"], table["trainable"])) == {"0": 0, "2": 8}


def test_simulate_4bit_refuses_real_weights():
    with pytest.raises(ValueError, match="meta"):
        params.simulate_4bit(nn.Sequential(nn.Linear(4, 4)), keep=())
