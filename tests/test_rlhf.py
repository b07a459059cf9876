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


# --- judges, the frontier and simulated rankings -----------------------------------------------------

PROMPTS = ["Movie review: the film", "Movie review: a great", "Movie review: bad", "Movie review: the plot is"]


def test_evaluate_policy_scores_every_judge_on_the_same_responses():
    policy = tiny_policy()
    seen = []

    def judge(prompts, responses):
        seen.extend(responses)
        return [float(len(r)) for r in responses]

    result = rlhf.evaluate_policy(policy.causal_lm, tiny_tokenizer(), PROMPTS, lambda p, r: [1.0] * len(r),
                                  max_new_tokens=4, judges={"length": judge})
    assert seen == result["responses"]
    assert result["judge_scores"]["length"] == [float(len(r)) for r in result["responses"]]
    assert result["length"] == pytest.approx(sum(map(len, seen)) / 4)
    assert result["length_se"] >= 0 and result["kl_se"] >= 0 and len(result["kls"]) == 4
    assert 0.0 <= result["cut_off_share"] <= 1.0


def test_vader_judge_scores_praise_above_scorn():
    vader = rlhf.vader_judge()
    praise, scorn = vader(["Movie review: The film"] * 2, [" is wonderful, warm and funny.", " is dull and awful."])
    assert -1.0 <= scorn < 0 < praise <= 1.0


def _evaluation(scores, judged, kls=(1.0, 2.0, 3.0, 4.0)):
    import statistics
    return {"scores": list(scores), "reward": statistics.fmean(scores), "reward_se": 0.1,
            "kl": statistics.fmean(kls), "kl_se": 0.2, "kls": list(kls), "judge_scores": {"vader": list(judged)},
            "vader": statistics.fmean(judged), "vader_se": 0.05, "cut_off_share": 1.0, "n_prompts": len(scores)}


def test_frontier_calls_a_reward_gain_without_the_judge_reward_hacking():
    before = _evaluation([0.0, 1.0, 2.0, 3.0], [0.1, 0.2, 0.3, 0.4], kls=(0, 0, 0, 0))
    hacked = _evaluation([2.0, 3.1, 3.9, 5.0], [0.1, 0.25, 0.3, 0.35])   # reward +2, judge ~0
    honest = _evaluation([2.0, 3.1, 3.9, 5.0], [0.5, 0.62, 0.68, 0.8])   # reward +2, judge +0.4
    table = rlhf.frontier_table([{"method": "PPO", "beta": 0.05, "updates": 4, **hacked},
                                 {"method": "DPO", "beta": 0.1, "updates": 8, **honest}], before, ["vader"])
    assert table.loc[0, "reward_gain"] == pytest.approx(2.0)
    assert table.loc[1, "vader_gain"] == pytest.approx(0.4)
    assert table.loc[0, "KL"] == pytest.approx(2.5) and table.loc[0, "KL_se"] == 0.2
    lines = rlhf.describe_frontier(table, {"vader": "VADER"}).splitlines()
    assert "VADER no change" in lines[0] and "the gain is the reward model's alone" in lines[0]
    assert "VADER up" in lines[1] and "alone" not in lines[1]


def test_ppo_stopped_at_milestones_is_the_uninterrupted_run(tmp_path):
    from ftkit import ppo

    settings = ppo.PPOSettings(rollout_size=4, minibatch_size=2, epochs=1, max_new_tokens=4, lr=1e-2)
    reward = lambda p, r: [float(x.count("good")) for x in r]  # noqa: E731
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    straight = ppo.train_ppo(tiny_policy(), tokenizer, PROMPTS, reward, iterations=3, settings=settings)

    def evaluate(causal_lm):  # draws random numbers, as sampling held-out responses does
        return {"draw": torch.rand(1).item()}

    torch.manual_seed(0)
    run, points = rlhf.train_ppo_with_checkpoints(tiny_policy(), tokenizer, PROMPTS, reward, milestones=[1, 3],
                                                  settings=settings, checkpoint_dir=tmp_path, evaluate=evaluate)
    assert [p["updates"] for p in points] == [1, 3]
    assert [e["loss"] for e in run.evaluations] == pytest.approx([e["loss"] for e in straight.evaluations])


def test_ranked_completions_give_k_choose_2_pairs_ordered_by_the_labeller():
    policy = tiny_policy()
    labeller = lambda p, r: [float(len(x)) for x in r]  # noqa: E731
    pairs, ties = rlhf.ranked_completion_pairs(policy.causal_lm, tiny_tokenizer(), PROMPTS[:2], labeller, k=4,
                                               max_new_tokens=4)
    assert len(pairs) + ties == 2 * 6
    assert all(p["chosen_score"] > p["rejected_score"] for p in pairs)
    assert {p["prompt"] for p in pairs} <= set(PROMPTS[:2])
    with pytest.raises(ValueError, match="at least 2"):
        rlhf.ranked_completion_pairs(policy.causal_lm, tiny_tokenizer(), PROMPTS, labeller, k=1, max_new_tokens=4)


def test_agreement_counts_pairs_the_scorer_orders_as_the_labeller_did():
    pairs = [{"prompt": "p", "chosen": "long text", "rejected": "short"},
             {"prompt": "p", "chosen": "x", "rejected": "longer"}]
    share, se = rlhf.agreement(lambda p, r: [float(len(x)) for x in r], pairs)
    assert share == 0.5 and se == pytest.approx(0.5)
    human = [{"chosen": "good", "rejected": "bad", "chosen_mean": 2, "rejected_mean": -2}]
    assert rlhf.agreement(lambda p, r: [float("good" in x) for x in r], human)[0] == 1.0
    assert all(math.isnan(x) for x in rlhf.agreement(lambda p, r: [0.0] * len(r), []))


def test_truncation_effect_pairs_cut_and_whole_sentences():
    sentences = [{"text": "the film is good good good good good good", "mean": 2.0},
                 {"text": "the plot is bad bad bad bad bad", "mean": -2.0},
                 {"text": "a great film", "mean": 1.0}]                     # too short to cut: left out
    effect = rlhf.truncation_effect(sentences, tiny_tokenizer(), lambda p, r: [float(len(x.split())) for x in r],
                                    max_new_tokens=2, n_words=1)
    assert effect["n"] == 2
    # whole continuations have 8 and 7 words, cut ones 2: changes -6 and -5
    assert effect["mean_change"] == pytest.approx(-5.5) and effect["change_se"] == pytest.approx(0.5)


def test_halves_are_disjoint_and_cover_every_sentence():
    sentences = [{"text": f"s{i}", "mean": 0.0} for i in range(11)]
    first, second = rlhf.halves(sentences, seed=3)
    assert not {s["text"] for s in first} & {s["text"] for s in second}
    assert len(first) + len(second) == 11


def test_record_policies_keeps_kl_and_every_judge_for_notebook_08(tmp_path, monkeypatch):
    import json
    from types import SimpleNamespace

    monkeypatch.setenv("FTKIT_RESULTS", str(tmp_path))
    before = _evaluation([0.0, 1.0, 2.0, 3.0], [0.1, 0.2, 0.3, 0.4])
    after = _evaluation([1.0, 2.0, 3.5, 3.5], [0.2, 0.2, 0.5, 0.5])
    config = SimpleNamespace(notebook="07_rlhf", profile="smoke", models={}, hardware="test")
    costs = rlhf.record_policies(config, {"PPO (ftkit)": (after, 0.05, 1.5, 0.3, tiny_policy())}, before,
                                 judges=["vader"], task="t")
    record = json.loads((tmp_path / "07_rlhf.json").read_text())["records"][0]
    assert record["kl_to_reference"] == pytest.approx(2.5) and record["beta"] == 0.05
    assert record["vader_gain"] == pytest.approx(0.1) and record["vader_gain_se"] > 0
    assert record["gain_se"] > 0 and record["n_eval"] == 4
    assert costs.loc["PPO (ftkit)", "wall_time_s"] == 1.5


def test_at_matched_kl_compares_with_the_nearest_checkpoint():
    early = {"method": "PPO (ftkit)", "beta": 0.05, "updates": 2, **_evaluation([1.0, 2.0, 3.0, 4.0], [0, 0, 0, 0],
                                                                                kls=(0.4, 0.5, 0.6, 0.5))}
    late = {"method": "PPO (ftkit)", "beta": 0.05, "updates": 8, **_evaluation([5.0, 6.0, 7.0, 8.0], [0, 0, 0, 0],
                                                                               kls=(9.0, 9.0, 9.0, 9.0))}
    dpo = {"method": "DPO (trl)", "beta": 0.1, "updates": 16, **_evaluation([1.0, 2.1, 2.9, 4.0], [0.5, 0.6, 0.7, 0.8],
                                                                            kls=(0.5, 0.5, 0.5, 0.5))}
    text = rlhf.at_matched_kl([early, late, dpo], {"vader": "VADER"})
    assert text.startswith("DPO (trl), beta 0.1 (KL 0.50) against PPO (ftkit), beta 0.05, after 2 updates (KL 0.50): "
                           "reward a tie (+0.00 ± 0.04 over n=4 (+0.0 SE))")
    assert "VADER higher (+0.65" in text
