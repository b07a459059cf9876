import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification, PreTrainedTokenizerFast

from ftkit import rlhf

WORDS = ["<eos>", "<unk>", "Movie", "review:", "good", "bad", "film", "the", "is", "a", "great", "plot"]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", pad_token="<eos>", unk_token="<unk>")


def tiny_config(**overrides) -> LlamaConfig:
    return LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       eos_token_id=0, pad_token_id=0, bos_token_id=None, **overrides)


def tiny_policy(seed: int = 0) -> rlhf.PolicyWithValue:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    lora = get_peft_model(LlamaForCausalLM(tiny_config()), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                      lora_dropout=0.0))
    return rlhf.PolicyWithValue(lora)


# --- preference pairs --------------------------------------------------------------------------------

def test_pairs_respect_the_margin_and_use_each_sentence_once():
    sentences = [{"text": f"s{i}", "mean": m} for i, m in enumerate([-3, 2.5, 0.1, 0.3, 1, -1, 3, -2.2, 0, 0.2])]
    pairs = rlhf.preference_pairs(sentences, margin=1.0, seed=1)
    assert pairs
    assert all(p["chosen_mean"] - p["rejected_mean"] >= 1.0 for p in pairs)
    used = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    assert len(used) == len(set(used))
    with pytest.raises(ValueError, match="Lower the margin"):
        rlhf.preference_pairs(sentences, margin=1.0, n_pairs=100)


def test_held_out_sentences_never_appear_in_training():
    ratings = {"text": [f"s{i}" for i in range(50)], "mean": [float(i % 9 - 4) for i in range(50)]}
    train, held_out = rlhf.split_sentences(ratings, held_out_share=0.2)
    assert len(held_out) == 10 and not {s["text"] for s in train} & {s["text"] for s in held_out}


def test_rater_spread_gives_the_standard_error_of_a_difference():
    spread = rlhf.rater_spread({"std": [1.0, 2.0, 3.0], "ratings": [[0] * 16] * 3})
    assert spread["difference_se"] == pytest.approx(math.sqrt(2) * 2.0 / 4)


# --- reward model --------------------------------------------------------------------------------------

def test_bradley_terry_loss_is_the_logistic_loss_on_the_reward_difference():
    chosen, rejected = torch.tensor([1.0, 0.0, -2.0]), torch.tensor([0.0, 0.0, 1.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(chosen - rejected, torch.ones(3))
    assert rlhf.bradley_terry_loss(chosen, rejected).item() == pytest.approx(expected.item())
    assert rlhf.bradley_terry_loss(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(math.log(2))


def test_pooled_position_is_where_the_transformers_classifier_reads_the_reward():
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(tiny_config(num_labels=1)).eval()
    batch = rlhf.reward_inputs(tiny_tokenizer(), ["the film is good", "bad plot"], max_length=16)
    # pad == eos: the appended eos counts as padding, so the reward is read at the token before it.
    assert rlhf.pooled_positions(batch["input_ids"], 0).tolist() == [3, 1]
    with torch.no_grad():
        hidden = model.model(**batch).last_hidden_state
        by_hand = model.score(hidden[torch.arange(2), rlhf.pooled_positions(batch["input_ids"], 0)])
        assert torch.allclose(model(**batch).logits, by_hand, atol=1e-6)


def test_pairwise_loss_trains_a_reward_model_to_prefer_the_chosen_text():
    from ftkit.train import train

    torch.manual_seed(0)
    model = LlamaForSequenceClassification(tiny_config(num_labels=1))
    pairs = [{"chosen": "the film is good", "rejected": "the film is bad"},
             {"chosen": "a great plot", "rejected": "a bad plot"}] * 4
    tokenizer = tiny_tokenizer()
    loader = rlhf.pair_loader(pairs, tokenizer, batch_size=4, max_length=16)
    train(model, loader, steps=30, lr=3e-3, loss_fn=rlhf.pairwise_loss, desc="test")
    assert rlhf.pairwise_accuracy(model, tokenizer, pairs[:2], max_length=16) == 1.0


# --- PPO pieces -------------------------------------------------------------------------------------

def test_gae_matches_a_hand_computed_case():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.6, 0.7]])
    advantages, returns = rlhf.gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=0.95)
    # A2 = 1 - 0.7 = 0.3; A1 = (0.7 - 0.6) + 0.95 * 0.3 = 0.385; A0 = (0.6 - 0.5) + 0.95 * 0.385 = 0.46575
    assert advantages.tolist()[0] == pytest.approx([0.46575, 0.385, 0.3])
    assert returns.tolist()[0] == pytest.approx([0.96575, 0.985, 1.0])


def test_gae_ignores_what_comes_after_a_response_ends():
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    advantages, _ = rlhf.gae(torch.tensor([[0.0, 1.0, 5.0]]), torch.tensor([[0.2, 0.4, 9.0]]), mask,
                             gamma=0.9, lam=0.8)
    # A1 = 1 - 0.4 = 0.6 (no next value); A0 = 0.9 * 0.4 - 0.2 + 0.9 * 0.8 * 0.6 = 0.592
    assert advantages.tolist()[0] == pytest.approx([0.592, 0.6, 0.0])


def test_clipped_objective_has_no_gradient_outside_the_clip_range():
    mask = torch.ones(1, 4)
    old = torch.zeros(1, 4)
    # ratios e^0.5 (above 1.2) and e^-0.5 (below 0.8), each with the advantage sign that pushes it further.
    logprobs = torch.tensor([[0.5, -0.5, 0.5, -0.5]], requires_grad=True)
    advantages = torch.tensor([[1.0, -1.0, -1.0, 1.0]])
    loss, clip_fraction = rlhf.clipped_surrogate_loss(logprobs, old, advantages, mask, clip_range=0.2)
    loss.backward()
    assert logprobs.grad[0, :2].tolist() == [0.0, 0.0]  # clipped: no gradient
    assert (logprobs.grad[0, 2:] != 0).all()  # moving back toward the old policy is not clipped
    assert clip_fraction.item() == pytest.approx(0.5)


def test_kl_penalty_and_score_land_on_the_right_tokens():
    kl = torch.tensor([[0.5, 0.5, 0.5], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    rewards = rlhf.kl_penalized_rewards(torch.tensor([2.0, -1.0]), kl, mask, beta=0.1)
    assert torch.allclose(rewards, torch.tensor([[-0.05, -0.05, 1.95], [-1.1, 0.0, 0.0]]))


def test_response_mask_stops_after_the_first_eos():
    policy = tiny_policy()
    rollout = rlhf.sample_responses(policy.causal_lm, tiny_tokenizer(), ["Movie review: the film", "Movie review:"],
                                    max_new_tokens=8, seed=0)
    responses = rollout.sequences[:, rollout.prompt_width:]
    for row, mask in zip(responses, rollout.response_mask):
        ends = (row == 0).nonzero()
        length = ends[0].item() + 1 if len(ends) else len(row)
        assert mask.tolist() == [1] * length + [0] * (len(row) - length)


def test_kl_is_zero_when_the_policy_equals_the_reference():
    policy = tiny_policy()  # LoRA's B starts at zero: the adapter changes nothing yet
    experience = rlhf.collect_experience(policy, tiny_tokenizer(), ["Movie review: the film"] * 4,
                                         lambda p, r: [1.0] * len(r), rlhf.PPOSettings(max_new_tokens=6))
    assert experience["kl"].abs().max().item() < 1e-6


def test_ppo_resumes_from_a_checkpoint_with_the_same_result(tmp_path):
    settings = rlhf.PPOSettings(rollout_size=4, minibatch_size=2, epochs=1, max_new_tokens=4, lr=1e-2)
    prompts = ["Movie review: the film", "Movie review: a great", "Movie review: bad", "Movie review: the plot is"]
    reward = lambda p, r: [float(x.count("good")) for x in r]  # noqa: E731
    tokenizer = tiny_tokenizer()

    torch.manual_seed(0)
    straight = rlhf.train_ppo(tiny_policy(), tokenizer, prompts, reward, iterations=3, settings=settings)
    torch.manual_seed(0)
    rlhf.train_ppo(tiny_policy(), tokenizer, prompts, reward, iterations=2, settings=settings, checkpoint_dir=tmp_path)
    resumed = rlhf.train_ppo(tiny_policy(), tokenizer, prompts, reward, iterations=3, settings=settings,
                             checkpoint_dir=tmp_path)
    assert resumed.resumed_from_step == 2
    assert [e["loss"] for e in resumed.evaluations] == pytest.approx([e["loss"] for e in straight.evaluations])


def test_evaluate_policy_reports_reward_with_its_standard_error():
    policy = tiny_policy()
    result = rlhf.evaluate_policy(policy.causal_lm, tiny_tokenizer(), ["Movie review: the film"] * 6,
                                  lambda p, r: [float(i) for i in range(len(r))], max_new_tokens=4, batch_size=3)
    # scores 0,1,2 per batch of 3 -> mean 1, sd 0.894 over six
    assert result["reward"] == pytest.approx(1.0)
    assert result["reward_se"] == pytest.approx(torch.tensor([0, 1, 2, 0, 1, 2.0]).std().item() / math.sqrt(6))
    assert abs(result["kl"]) < 1e-6


def test_distinct_bigrams_falls_when_text_repeats():
    assert rlhf.distinct_bigrams(["a b c d"]) == 1.0
    assert rlhf.distinct_bigrams(["a b a b a b"]) == pytest.approx(2 / 5)


def test_paired_gain_uses_the_per_prompt_differences():
    before = {"scores": [0.0, 2.0, 4.0, 6.0]}
    after = {"scores": [1.0, 3.0, 5.5, 6.5]}
    gain, se = rlhf.paired_gain(after, before)
    assert gain == pytest.approx(1.0)
    assert se == pytest.approx(torch.tensor([1.0, 1.0, 1.5, 0.5]).std().item() / 2)
    with pytest.raises(ValueError, match="same examples"):
        rlhf.paired_gain({"scores": [1.0]}, before)
