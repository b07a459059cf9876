import math

import pytest
import torch
from transformers import LlamaForSequenceClassification

from ftkit import reward_model
from test_ppo import tiny_config, tiny_tokenizer


def test_bradley_terry_loss_is_the_logistic_loss_on_the_reward_difference():
    chosen, rejected = torch.tensor([1.0, 0.0, -2.0]), torch.tensor([0.0, 0.0, 1.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(chosen - rejected, torch.ones(3))
    assert reward_model.bradley_terry_loss(chosen, rejected).item() == pytest.approx(expected.item())
    assert reward_model.bradley_terry_loss(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(math.log(2))


def test_pooled_position_is_where_the_transformers_classifier_reads_the_reward():
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(tiny_config(num_labels=1)).eval()
    batch = reward_model.reward_inputs(tiny_tokenizer(), ["the film is good", "bad plot"], max_length=16)
    # pad == eos: the appended eos counts as padding, so the reward is read at the token before it.
    assert reward_model.pooled_positions(batch["input_ids"], 0).tolist() == [3, 1]
    with torch.no_grad():
        hidden = model.model(**batch).last_hidden_state
        by_hand = model.score(hidden[torch.arange(2), reward_model.pooled_positions(batch["input_ids"], 0)])
        assert torch.allclose(model(**batch).logits, by_hand, atol=1e-6)


def test_pairwise_loss_trains_a_reward_model_to_prefer_the_chosen_text():
    from ftkit.train import train

    torch.manual_seed(0)
    model = LlamaForSequenceClassification(tiny_config(num_labels=1))
    pairs = [{"chosen": "the film is good", "rejected": "the film is bad"},
             {"chosen": "a great plot", "rejected": "a bad plot"}] * 4
    tokenizer = tiny_tokenizer()
    loader = reward_model.pair_loader(pairs, tokenizer, batch_size=4, max_length=16)
    train(model, loader, steps=30, lr=3e-3, loss_fn=reward_model.pairwise_loss, desc="test")
    assert reward_model.pairwise_accuracy(model, tokenizer, pairs[:2], max_length=16) == 1.0
    swapped = [{"chosen": p["rejected"], "rejected": p["chosen"]} for p in pairs[:2]]
    assert reward_model.pairwise_correct(model, tokenizer, pairs[:2] + swapped, max_length=16) == [1, 1, 0, 0]
