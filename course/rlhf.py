"""Notebook 07 (RLHF): the course's preference data and prompts, and how its policies are judged and described.

Preference pairs from the VADER movie sentences' individual human ratings, the policy's `Movie review:`
prompts, the reward function that scores a review, the held-out evaluation of a policy (reward, KL to the
reference, signs of reward hacking) and the sentences about a beta sweep. The algorithms live in
`ftkit.reward_model` (the Bradley-Terry reward model) and `ftkit.ppo` (PPO with a KL penalty).
"""
from __future__ import annotations

import math
import random
import statistics
from typing import Callable, Sequence

import torch
from torch import nn

from ftkit.evaluate import evaluation_mode
from ftkit.ppo import per_token_kl, response_logprobs, sample_responses
from ftkit.reward_model import score_texts

PROMPT_PREFIX = "Movie review:"


# ---------------------------------------------------------------------------------------------------
# Preference pairs from individual human ratings
# ---------------------------------------------------------------------------------------------------

def rater_spread(ratings) -> dict[str, float]:
    """How much raters disagree about one sentence: the median over sentences of the raters' standard
    deviation, the median number of raters, and the standard error of a difference of two sentence means
    at that spread (sqrt(2) * sd / sqrt(n))."""
    sd = statistics.median(ratings["std"])
    n_raters = statistics.median(len(r) for r in ratings["ratings"])
    return {"rater_sd": sd, "n_raters": n_raters, "difference_se": math.sqrt(2) * sd / math.sqrt(n_raters)}


def split_sentences(ratings, held_out_share: float = 0.2, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Sentences (dicts with `text` and `mean`) split into training and held-out sets, so that pairs built
    inside each set never share a sentence across the split."""
    rows = [{"text": t, "mean": m} for t, m in zip(ratings["text"], ratings["mean"])]
    random.Random(seed).shuffle(rows)
    cut = round(len(rows) * (1 - held_out_share))
    return rows[:cut], rows[cut:]


def preference_pairs(sentences: Sequence[dict], margin: float, n_pairs: int | None = None,
                     seed: int = 0) -> list[dict]:
    """Pair sentences at random; keep pairs whose mean human ratings differ by at least `margin`.

    Each pair is `{"chosen": more positive text, "rejected": less positive text, "chosen_mean", "rejected_mean"}`;
    every sentence is used at most once. Returns at most `n_pairs` pairs.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0 (a difference of mean ratings), got {margin}.")
    order = list(sentences)
    random.Random(seed).shuffle(order)
    pairs = []
    for a, b in zip(order[0::2], order[1::2]):
        if abs(a["mean"] - b["mean"]) >= margin:
            chosen, rejected = (a, b) if a["mean"] > b["mean"] else (b, a)
            pairs.append({"chosen": chosen["text"], "rejected": rejected["text"],
                          "chosen_mean": chosen["mean"], "rejected_mean": rejected["mean"]})
    if n_pairs is not None and len(pairs) < n_pairs:
        raise ValueError(f"Only {len(pairs)} pairs differ by {margin} or more; asked for {n_pairs}. "
                         "Lower the margin or give more sentences.")
    return pairs[:n_pairs]


def review_prompts(sentences: Sequence[dict], n_words: int = 4) -> list[str]:
    """Prompts for the policy: `Movie review: <the first n words of a review sentence>`."""
    return [f"{PROMPT_PREFIX} {' '.join(s['text'].split()[:n_words])}" for s in sentences]


def review_text(prompt: str, response: str) -> str:
    """What the reward model reads: the review itself (the prompt's opening plus the response)."""
    return prompt.removeprefix(PROMPT_PREFIX).strip() + response


def trl_pairs(pairs: Sequence[dict], prompt: str | None = None):
    """The pairs as a `datasets.Dataset` in trl's preference format: `chosen`/`rejected` texts for
    `RewardTrainer`, or, with `prompt`, `prompt` plus the two texts as completions of it (for `DPOTrainer`)."""
    from datasets import Dataset

    if prompt is None:
        return Dataset.from_dict({"chosen": [p["chosen"] for p in pairs], "rejected": [p["rejected"] for p in pairs]})
    return Dataset.from_dict({"prompt": [prompt] * len(pairs), "chosen": [" " + p["chosen"] for p in pairs],
                              "rejected": [" " + p["rejected"] for p in pairs]})


# ---------------------------------------------------------------------------------------------------
# The reward of a review: the reward model's score of the prompt's opening plus the response
# ---------------------------------------------------------------------------------------------------

def reward_function(reward_model: nn.Module, tokenizer, max_length: int = 64) -> Callable:
    """`reward(prompts, completions, **_) -> list[float]`: the reward model's score of each review. The
    signature suits both `ftkit.ppo.train_ppo` and trl's GRPO/RLOO trainers."""
    def reward(prompts, completions, **_):
        texts = [review_text(p, c) for p, c in zip(prompts, completions)]
        return score_texts(reward_model, tokenizer, texts, max_length=max_length).tolist()

    return reward


# ---------------------------------------------------------------------------------------------------
# Evaluating a policy: held-out reward, KL to the reference, and signs of reward hacking
# ---------------------------------------------------------------------------------------------------

def distinct_bigrams(texts: Sequence[str]) -> float:
    """Distinct word bigrams / all word bigrams over `texts` (0..1): falls when a policy repeats itself."""
    bigrams = [tuple(w[i:i + 2]) for w in (t.split() for t in texts) for i in range(len(w) - 1)]
    return len(set(bigrams)) / len(bigrams) if bigrams else 0.0


def evaluate_policy(causal_lm: nn.Module, tokenizer, prompts: Sequence[str], reward_fn: Callable, *,
                    max_new_tokens: int, seed: int = 0, batch_size: int = 32) -> dict:
    """Sample one response per held-out prompt (seeded, so every policy is judged on the same draw of the
    dice) and report the reward's mean and standard error, the mean KL to the reference (the same model
    with its adapter disabled; 0 for a model without one), response length and distinct bigrams."""
    scores, kls, lengths, responses = [], [], [], []
    for start in range(0, len(prompts), batch_size):
        rollout = sample_responses(causal_lm, tokenizer, prompts[start:start + batch_size],
                                   max_new_tokens=max_new_tokens, seed=seed + start)
        mask = rollout.response_mask.float()
        with evaluation_mode(causal_lm):
            if hasattr(causal_lm, "disable_adapter"):
                logprobs = response_logprobs(causal_lm, rollout)
                with causal_lm.disable_adapter():
                    kl = (per_token_kl(logprobs, response_logprobs(causal_lm, rollout)) * mask).sum(-1)
            else:
                kl = torch.zeros(len(rollout.prompts), device=mask.device)
        scores += list(map(float, reward_fn(rollout.prompts, rollout.responses)))
        kls += kl.tolist()
        lengths += mask.sum(-1).tolist()
        responses += rollout.responses
    n = len(scores)
    return {"reward": statistics.fmean(scores), "reward_se": statistics.stdev(scores) / math.sqrt(n),
            "kl": statistics.fmean(kls), "response_tokens": statistics.fmean(lengths),
            "distinct_bigrams": distinct_bigrams(responses), "n_prompts": n, "scores": scores,
            "responses": responses}


def paired_gain(after: dict, before: dict) -> tuple[float, float]:
    """Mean reward gain of `after` over `before` (two `evaluate_policy` results on the same prompts) and its
    standard error from the per-prompt differences: pairing removes how much the prompts differ from each
    other, which is most of the spread, so this is the right yardstick for "better than before"."""
    from ftkit.evaluate import paired_difference

    return paired_difference(after["scores"], before["scores"])


def describe_beta_sweep(sweep: Sequence[dict], baseline: dict) -> str:
    """Plain sentences about a beta sweep (rows from `evaluate_policy` plus `beta`), against the baseline:
    the reward gained and the KL paid at each beta, and where repetition (fewer distinct bigrams) shows."""
    lines = []
    for row in sorted(sweep, key=lambda r: r["beta"]):
        gain, se = paired_gain(row, baseline)
        repeats = row["distinct_bigrams"] < 0.9 * baseline["distinct_bigrams"]
        z = f"{gain / se:+.1f} standard errors" if se > 0 else "identical responses"
        lines.append(f"beta {row['beta']:g}: reward {gain:+.2f} ({z}) for a KL of "
                     f"{row['kl']:.2f} nats; distinct bigrams {row['distinct_bigrams']:.2f} "
                     f"(baseline {baseline['distinct_bigrams']:.2f})" + (": repeating itself" if repeats else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# The KL penalty, token by token (a small made-up rollout)
# ---------------------------------------------------------------------------------------------------

def kl_penalty_example() -> dict:
    """A small made-up rollout of two responses, with per-token KL values (nats) of the size a trained policy
    shows: `tokens` (one list per response), `scores` (2,), `kl` and `mask` (2, 11; the second response
    ends one token early). Response A has drifted from the reference (it repeats "great", which the
    reference finds unlikely) and scores high; response B stays close to the reference and scores lower."""
    tokens = [[" It", "'s", " a", " great", ",", " great", ",", " great", " film", "!", "<|im_end|>"],
              [" The", " cast", " is", " warm", ",", " the", " plot", " thin", ".", "<|im_end|>"]]
    kl = torch.tensor([[0.3, 0.1, 0.2, 2.4, 0.4, 2.9, 0.5, 3.1, 0.6, 0.8, 0.4],
                       [0.05, -0.1, 0.02, 0.3, 0.0, 0.1, -0.05, 0.2, 0.05, 0.1, 0.0]])
    mask = torch.tensor([[1.0] * 11, [1.0] * 10 + [0.0]])
    return {"names": ["A (drifted)", "B (near the reference)"], "tokens": tokens,
            "scores": torch.tensor([5.2, 1.8]), "kl": kl * mask, "mask": mask}


def plot_kl_penalized_rewards(beta: float = 0.1):
    """Per-token rewards of `kl_penalty_example` at `beta`, from `ftkit.ppo.kl_penalized_rewards`: one panel
    per response, the penalty -beta x KL on every token and the score on the last one, with each response's
    return (the sum) in its title. The y axis stays fixed as beta moves (it covers beta up to 1)."""
    import matplotlib.pyplot as plt
    from ftkit.ppo import kl_penalized_rewards

    example = kl_penalty_example()
    rewards = kl_penalized_rewards(example["scores"], example["kl"], example["mask"], beta)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), sharey=True)
    for row, (ax, name, tokens) in enumerate(zip(axes, example["names"], example["tokens"])):
        n = len(tokens)
        values = rewards[row, :n].tolist()
        colors = ["tab:red"] * (n - 1) + ["tab:blue"]
        ax.bar(range(n), values, color=colors)
        ax.axhline(0, color="gray", linewidth=0.8)
        ax.set_xticks(range(n), [t.strip() or repr(t) for t in tokens], rotation=45, ha="right")
        kl_sum = example["kl"][row].sum().item()
        ax.set(title=f"response {name}: return {sum(values):+.2f}\n= score {example['scores'][row]:.1f} "
                     f"- {beta:.2f} x KL {kl_sum:.2f} nats",
               xlabel="response token (blue: the last, where the score arrives)")
    axes[0].set_ylabel("per-token reward (reward-model score units)")
    low = -1.0 * example["kl"].max().item()
    axes[0].set_ylim(min(low, rewards.min().item()) - 0.5, max(6.0, rewards.max().item() + 0.5))
    returns = (rewards * example["mask"]).sum(-1)
    favoured = example["names"][int(returns.argmax())].split()[0]
    fig.suptitle(f"The KL penalty at beta = {beta:.2f}: -beta x KL (nats) on every token, plus the score on the last; "
                 f"the higher return is response {favoured}'s")
    fig.tight_layout()
    plt.show()


# ---------------------------------------------------------------------------------------------------
# Exercises
# ---------------------------------------------------------------------------------------------------

def check_bradley_terry(bradley_terry) -> "Verdict":
    """Check a learner's `bradley_terry(chosen_rewards, rejected_rewards)`, the mean Bradley-Terry loss of a
    batch of pairs, against `ftkit.reward_model.bradley_terry_loss`, on rewards where the chosen text scores
    both above and below the rejected one (so swapping them, or flipping the sign, shows)."""
    from course.exercises import Case, check, fresh_generator
    from ftkit.reward_model import bradley_terry_loss

    def cases():
        g = fresh_generator(707)
        for n, scale in [(5, 1.0), (8, 3.0), (1, 2.0)]:
            chosen, rejected = scale * torch.randn(n, generator=g), scale * torch.randn(n, generator=g)
            yield Case((chosen, rejected), bradley_terry_loss(chosen, rejected).item())

    return check("Bradley-Terry loss (ftkit.reward_model.bradley_terry_loss)", bradley_terry, cases,
                 hint="the loss is -log sigmoid(r_chosen - r_rejected), averaged over the pairs; it is small when "
                      "the chosen text scores higher. torch.nn.functional.logsigmoid is the stable way to write it.")


def check_gae(gae) -> "Verdict":
    """Check a learner's `gae(rewards, values, mask, gamma, lam) -> (advantages, returns)` against
    `ftkit.ppo.gae` on rollouts whose responses end before the last position (mask 0 after the end) and
    whose value head gives non-zero values at those padding positions, as a real one does."""
    from course.exercises import Case, check, fresh_generator
    from ftkit.ppo import gae as reference

    def cases():
        g = fresh_generator(708)
        for lengths, width, gamma, lam in [([6, 3, 4], 6, 1.0, 0.95), ([2, 5], 7, 0.9, 0.8), ([4, 4, 1, 3], 5, 0.99, 1.0)]:
            mask = (torch.arange(width) < torch.tensor(lengths).unsqueeze(1)).float()
            rewards = 0.3 * torch.randn(len(lengths), width, generator=g) * mask
            rewards[torch.arange(len(lengths)), torch.tensor(lengths) - 1] += 2 * torch.randn(len(lengths), generator=g)
            values = torch.randn(len(lengths), width, generator=g)  # the padding positions too
            yield Case((rewards, values, mask, gamma, lam), reference(rewards, values, mask, gamma, lam))

    return check("generalised advantage estimation (ftkit.ppo.gae)", gae, cases,
                 hint="after a response ends there is no next value: use values * mask, so V_{t+1} is 0 past the "
                      "last token, and keep advantages (and returns = advantages + values * mask) at 0 on padding.")


def check_clipped_surrogate(clipped_surrogate) -> "Verdict":
    """Check a learner's `clipped_surrogate(logprobs, old_logprobs, advantages, mask, clip_range)`, PPO's
    policy loss (a number to minimise), against the loss of `ftkit.ppo.clipped_surrogate_loss`, on
    ratios that leave the clip range on both sides, advantages of both signs, and padded responses."""
    from course.exercises import Case, check, fresh_generator
    from ftkit.ppo import clipped_surrogate_loss

    def cases():
        g = fresh_generator(709)
        for lengths, width, clip_range in [([5, 3, 4], 5, 0.2), ([6, 2], 6, 0.1), ([3, 3, 3, 1], 4, 0.3)]:
            mask = (torch.arange(width) < torch.tensor(lengths).unsqueeze(1)).float()
            old_logprobs = -3 * torch.rand(len(lengths), width, generator=g)
            logprobs = old_logprobs + 0.5 * torch.randn(len(lengths), width, generator=g)  # ratios ~0.4 to 2.5
            advantages = torch.randn(len(lengths), width, generator=g)
            loss, _ = clipped_surrogate_loss(logprobs, old_logprobs, advantages, mask, clip_range)
            yield Case((logprobs, old_logprobs, advantages, mask, clip_range), loss.item())

    return check("clipped surrogate loss (ftkit.ppo.clipped_surrogate_loss)", clipped_surrogate, cases,
                 hint="ratio = exp(logprobs - old_logprobs); the objective takes the smaller (the worse) of "
                      "ratio x A and clip(ratio, 1 - eps, 1 + eps) x A, so the loss to minimise is the mean over "
                      "response tokens (mask) of max(-ratio x A, -clipped ratio x A).")


def check_dpo_loss(dpo_loss) -> "Verdict":
    """Check a learner's `dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
    ref_rejected_logps, beta)` against `ftkit.dpo.dpo_loss` (which agrees with trl's DPOTrainer), on
    sequence log-probabilities where the reference model's differ from the policy's."""
    from course.exercises import Case, check, fresh_generator
    from ftkit.dpo import dpo_loss as reference

    def cases():
        g = fresh_generator(710)
        for n, beta in [(4, 0.1), (6, 0.5), (1, 2.0)]:
            ref_chosen, ref_rejected = -30 * torch.rand(n, generator=g), -30 * torch.rand(n, generator=g)
            policy_chosen = ref_chosen + 3 * torch.randn(n, generator=g)
            policy_rejected = ref_rejected + 3 * torch.randn(n, generator=g)
            args = (policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)
            yield Case(args, reference(*args).item())

    return check("DPO loss (ftkit.dpo.dpo_loss)", dpo_loss, cases,
                 hint="each response's implicit reward is beta x (log pi - log pi_ref); the loss is "
                      "-log sigmoid(chosen's minus rejected's), averaged over the pairs.")
