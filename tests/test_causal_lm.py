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


def test_perplexity_change():
    assert causal_lm.perplexity_change(20.0, 15.0) == -25.0
