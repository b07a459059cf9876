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
