import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ftkit import causal_lm


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def test_shift_pairs_each_position_with_the_next_token():
    inputs, targets = causal_lm.shift_for_next_token(torch.tensor([[5, 6, 7, 8]]))
    assert inputs.tolist() == [[5, 6, 7]] and targets.tolist() == [[6, 7, 8]]


def test_shifted_loss_by_hand_equals_the_models_loss(tiny):
    ids = torch.randint(0, 50, (3, 12), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[0, :4] = causal_lm.IGNORE_INDEX  # masked positions are skipped the same way
    out = tiny(input_ids=ids, labels=labels)
    assert torch.allclose(causal_lm.shifted_loss(out.logits, labels), out.loss, atol=1e-6)
    # Without the shift the loss is a different number: the shift is what makes it next-token prediction.
    unshifted = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 50), ids.reshape(-1))
    assert not torch.allclose(unshifted, out.loss, atol=1e-3)


def test_one_prediction_loss_is_minus_log_probability(tiny):
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    logits = tiny(input_ids=ids).logits
    one = causal_lm.one_prediction_loss(logits, ids, position=2)
    expected = torch.nn.functional.cross_entropy(logits[0, 2], ids[0, 3]).item()
    assert one["target_id"] == 4 and math.isclose(one["loss"], expected, rel_tol=1e-5)
    assert math.isclose(one["probability"], math.exp(-expected), rel_tol=1e-5)


def test_sample_blocks_is_seeded_and_bounded():
    blocks = torch.arange(40).view(10, 4)
    a, b = causal_lm.sample_blocks(blocks, 3, seed=1), causal_lm.sample_blocks(blocks, 3, seed=1)
    assert a.shape == (3, 4) and torch.equal(a, b)
    assert causal_lm.sample_blocks(blocks, None).shape == (10, 4)
    assert causal_lm.sample_blocks(blocks, 99).shape == (10, 4)


def test_perplexity_change_and_words():
    assert causal_lm.perplexity_change(20.0, 15.0) == -25.0
    assert "fell" in causal_lm.describe_change("x", 20.0, 15.0)
    assert "rose" in causal_lm.describe_change("x", 15.0, 20.0)
    table = causal_lm.forgetting_table({"a": 10.0}, {"a": 12.0})
    assert table.loc[0, "change %"] == 20.0


def test_with_lora_trains_only_the_adapters(tiny):
    from ftkit.params import count_parameters, lora_parameter_count

    import copy
    model = causal_lm.with_lora(copy.deepcopy(tiny), r=2, target_modules=("q_proj", "v_proj"))
    # q_proj: 16 -> 16; v_proj: 16 -> 8 (one key/value head of 8), in each of 2 layers
    expected = 2 * (lora_parameter_count(16, 16, 2) + lora_parameter_count(8, 16, 2))
    assert count_parameters(model).trainable == expected
