import math

import pytest
import torch

from course import rlhf
from test_ppo import tiny_policy, tiny_tokenizer


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


# --- evaluating a policy ---------------------------------------------------------------------------

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


# --- the KL penalty widget ---------------------------------------------------------------------------

def test_kl_penalty_example_returns_are_score_minus_beta_times_kl():
    from ftkit.ppo import kl_penalized_rewards

    example = rlhf.kl_penalty_example()
    assert [len(t) for t in example["tokens"]] == example["mask"].sum(-1).int().tolist()
    for beta in (0.0, 0.3, 1.0):
        returns = kl_penalized_rewards(example["scores"], example["kl"], example["mask"], beta).sum(-1)
        assert torch.allclose(returns, example["scores"] - beta * example["kl"].sum(-1))
    # The drifted response wins without a penalty and loses at a large beta: the point of the widget.
    assert example["scores"][0] > example["scores"][1]
    assert (example["scores"] - example["kl"].sum(-1))[0] < (example["scores"] - example["kl"].sum(-1))[1]


def test_kl_penalty_plot_has_titles_axes_and_units(monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda: None)
    rlhf.plot_kl_penalized_rewards(0.5)
    fig = plt.gcf()
    left, right = fig.axes
    assert "beta = 0.50" in fig._suptitle.get_text() and "response B" in fig._suptitle.get_text()
    assert "return -0.65" in left.get_title() and "nats" in left.get_title()
    assert "score units" in left.get_ylabel() and "token" in right.get_xlabel()
    plt.close(fig)


# --- exercises: the checks catch the typical mistakes ---------------------------------------------------

def test_bradley_terry_check_catches_a_flipped_sign_and_swapped_texts():
    from torch.nn import functional as F

    assert rlhf.check_bradley_terry(lambda c, r: -F.logsigmoid(c - r).mean()).correct
    for wrong in (lambda c, r: F.logsigmoid(c - r).mean(),          # the sign flipped
                  lambda c, r: -F.logsigmoid(r - c).mean(),         # chosen and rejected swapped
                  lambda c, r: -F.logsigmoid(c - r).sum()):         # summed, not averaged
        verdict = rlhf.check_bradley_terry(wrong)
        assert not verdict.correct and "should be" in verdict.message and "but is" in verdict.message


def test_gae_check_catches_values_leaking_past_the_end_of_a_response():
    def ignores_the_mask(rewards, values, mask, gamma, lam):
        advantages, next_value, next_advantage = torch.zeros_like(rewards), 0.0, 0.0
        for t in reversed(range(rewards.shape[1])):
            delta = rewards[:, t] + gamma * next_value - values[:, t]
            next_advantage = delta + gamma * lam * next_advantage
            advantages[:, t] = next_advantage
            next_value = values[:, t]
        return advantages, advantages + values

    def masks_only_the_output(rewards, values, mask, gamma, lam):
        advantages, returns = ignores_the_mask(rewards, values, mask, gamma, lam)
        return advantages * mask, returns * mask  # the padding's value still leaks into the last token

    for wrong in (ignores_the_mask, masks_only_the_output):
        verdict = rlhf.check_gae(wrong)
        assert not verdict.correct and "in value 0 of 2: element" in verdict.message and "should be" in verdict.message


def test_clipped_surrogate_check_catches_min_for_max_no_clipping_and_the_sign():
    from ftkit.ppo import masked_mean

    def surrogate(pick, clip=True, sign=-1.0):
        def loss(logprobs, old_logprobs, advantages, mask, clip_range):
            ratio = torch.exp(logprobs - old_logprobs)
            clipped = torch.clamp(ratio, 1 - clip_range, 1 + clip_range) if clip else ratio
            return masked_mean(pick(sign * advantages * ratio, sign * advantages * clipped), mask)
        return loss

    assert rlhf.check_clipped_surrogate(surrogate(torch.maximum)).correct
    for wrong in (surrogate(torch.minimum), surrogate(torch.maximum, clip=False),
                  surrogate(torch.minimum, sign=1.0)):  # the objective, not the loss
        verdict = rlhf.check_clipped_surrogate(wrong)
        assert not verdict.correct and "should be" in verdict.message and "but is" in verdict.message


def test_dpo_check_catches_a_flipped_sign_and_a_missing_reference():
    from torch.nn import functional as F

    def dpo(with_reference=True, sign=1.0):
        def loss(pc, pr, rc, rr, beta):
            margin = (pc - rc) - (pr - rr) if with_reference else pc - pr
            return -F.logsigmoid(sign * beta * margin).mean()
        return loss

    assert rlhf.check_dpo_loss(dpo()).correct
    for wrong in (dpo(sign=-1.0), dpo(with_reference=False)):
        verdict = rlhf.check_dpo_loss(wrong)
        assert not verdict.correct and "should be" in verdict.message and "but is" in verdict.message
