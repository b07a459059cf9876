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
