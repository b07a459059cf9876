"""Notebook 07 (RLHF): the course's preference data and prompts, and how its policies are judged and described.

Preference pairs from the VADER movie sentences' individual human ratings, the policy's `Movie review:`
prompts, the reward function that scores a review and the judges that the policy never optimizes (VADER's
lexicon, a second reward model), the held-out evaluation of a policy (reward, judges, KL to the reference,
truncation, signs of reward hacking), the reward-against-KL frontier and the sentences about it, and
rankings of one prompt's completions by a simulated labeller. The algorithms live in
`ftkit.reward_model` (the Bradley-Terry reward model) and `ftkit.ppo` (PPO with a KL penalty).
"""
from __future__ import annotations

import math
import random
import statistics
from typing import Callable, Sequence

import torch
from torch import nn

from course import results
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


def halves(sentences: Sequence[dict], seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Two disjoint halves of `sentences`, drawn at random: pairs built from one never share a sentence, or
    a rater's judgement of one, with pairs built from the other."""
    order = list(sentences)
    random.Random(seed).shuffle(order)
    return order[:len(order) // 2], order[len(order) // 2:]


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


def vader_judge() -> Callable:
    """`judge(prompts, completions) -> list[float]`: VADER's compound sentiment of each review (-1 most
    negative, +1 most positive). VADER is a rule-based lexicon of words rated by people (Hutto & Gilbert 2014):
    no policy here ever optimizes it, so it can judge whether a higher reward means more positive text."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()

    def judge(prompts, completions, **_):
        return [analyzer.polarity_scores(review_text(p, c))["compound"] for p, c in zip(prompts, completions)]

    return judge


def evaluate_policy(causal_lm: nn.Module, tokenizer, prompts: Sequence[str], reward_fn: Callable, *,
                    max_new_tokens: int, seed: int = 0, batch_size: int = 32,
                    judges: dict[str, Callable] | None = None) -> dict:
    """Sample one response per held-out prompt (seeded, so every policy is judged on the same draw of the
    dice) and report the reward's mean and standard error, the KL to the reference (summed over a response:
    the same model with its adapter disabled; 0 for a model without one) with its standard error, response
    length, the share of responses cut off at `max_new_tokens` before their end-of-sequence token, and
    distinct bigrams. Each of `judges` (name -> a function like `reward_fn`) scores the same responses:
    `<name>` and `<name>_se` in the result, its per-prompt scores in `judge_scores[name]`."""
    judges = judges or {}
    scores, kls, lengths, cut, responses = [], [], [], [], []
    judged = {name: [] for name in judges}
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
        last = rollout.sequences[:, -1]
        cut += ((rollout.response_mask[:, -1] == 1) & (last != tokenizer.eos_token_id)).tolist()
        scores += list(map(float, reward_fn(rollout.prompts, rollout.responses)))
        for name, judge in judges.items():
            judged[name] += list(map(float, judge(rollout.prompts, rollout.responses)))
        kls += kl.tolist()
        lengths += mask.sum(-1).tolist()
        responses += rollout.responses
    n = len(scores)
    result = {"reward": statistics.fmean(scores), "reward_se": _se(scores),
              "kl": statistics.fmean(kls), "kl_se": _se(kls), "response_tokens": statistics.fmean(lengths),
              "cut_off_share": statistics.fmean(cut), "distinct_bigrams": distinct_bigrams(responses),
              "n_prompts": n, "scores": scores, "kls": kls, "responses": responses, "judge_scores": judged}
    for name, values in judged.items():
        result[name], result[f"{name}_se"] = statistics.fmean(values), _se(values)
    return result


def _se(values: Sequence[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")


def paired_gain(after: dict, before: dict, judge: str | None = None) -> tuple[float, float]:
    """Mean gain of `after` over `before` (two `evaluate_policy` results on the same prompts) in the reward, or
    in the score of `judge`, and its standard error from the per-prompt differences: pairing removes how much
    the prompts differ from each other, which is most of the spread, so this is the right yardstick for
    "better than before"."""
    from ftkit.evaluate import paired_difference

    if judge is None:
        return paired_difference(after["scores"], before["scores"])
    return paired_difference(after["judge_scores"][judge], before["judge_scores"][judge])


def frontier_table(points: Sequence[dict], baseline: dict, judges: Sequence[str]):
    """One row per trained policy (`points`: `evaluate_policy` results plus `method`, `beta` and `updates`):
    its KL to the reference, its optimized reward and each judge's score, each with its standard error over the
    held-out prompts, and each one's paired gain over the baseline with that gain's standard error."""
    import pandas as pd

    rows = []
    for point in points:
        row = {"method": point["method"], "beta": point["beta"], "updates": point["updates"],
               "KL": point["kl"], "KL_se": point["kl_se"], "reward": point["reward"], "reward_se": point["reward_se"]}
        row["reward_gain"], row["reward_gain_se"] = paired_gain(point, baseline)
        for name in judges:
            row[name], row[f"{name}_se"] = point[name], point[f"{name}_se"]
            row[f"{name}_gain"], row[f"{name}_gain_se"] = paired_gain(point, baseline, judge=name)
        row["cut_off_share"], row["n_prompts"] = point["cut_off_share"], point["n_prompts"]
        rows.append(row)
    return pd.DataFrame(rows)


def describe_frontier(table, judges: dict[str, str]) -> str:
    """Sentences, one per policy in a `frontier_table`, that say what its reward gain and each judge's gain
    show (a gain within two standard errors is no change), and where the reward rose while a judge did not:
    the mark of reward hacking. `judges` maps a judge's column to its name in words."""
    from course.gaps import TIE_WITHIN_SE, gap_phrase
    from course.gaps import movement as move

    lines = []
    for _, row in table.iterrows():
        n = int(row["n_prompts"])
        parts = [f"reward {move(row['reward_gain'], row['reward_gain_se'])} "
                 f"({gap_phrase(row['reward_gain'], row['reward_gain_se'], n, scale=1, unit='', digits=2)})"]
        parted = []
        for column, words in judges.items():
            word = move(row[f"{column}_gain"], row[f"{column}_gain_se"])
            parts.append(f"{words} {word} ({gap_phrase(row[f'{column}_gain'], row[f'{column}_gain_se'], n, scale=1, unit='', digits=2)})")
            if word != "up":
                parted.append(words)
        rose = move(row["reward_gain"], row["reward_gain_se"]) == "up"
        verdict = (f". The reward rose and {' and '.join(parted)} did not: by "
                   f"{'that judge' if len(parted) == 1 else 'those judges'} the gain is the reward model's alone"
                   if rose and parted else "")
        updates = f"{row['updates']:g} update{'' if row['updates'] == 1 else 's'}"
        lines.append(f"{row['method']} (beta {row['beta']:g}, {updates}, KL {row['KL']:.2f} nats): "
                     + "; ".join(parts) + verdict)
    lines.append(f"(A change within {TIE_WITHIN_SE:g} standard errors of the paired difference counts as no change.)")
    return "\n".join(lines)


def at_matched_kl(points: Sequence[dict], judges: dict[str, str], reference: str = "PPO (ftkit)") -> str:
    """Each policy that is not `reference`, against the `reference` checkpoint whose KL to the reference model
    is closest to its own, paired prompt by prompt: the gap in reward and in each judge's score, each called
    higher, lower or a tie (within two standard errors, `course.gaps`). `points` as for `frontier_table`."""
    from course.gaps import gap_phrase, relation
    from ftkit.evaluate import paired_difference

    anchors = [p for p in points if p["method"] == reference]
    if not anchors:
        return f"No {reference} run to compare with."
    words = {"beats": "higher", "trails": "lower", "ties with": "a tie"}
    lines = []
    for point in points:
        if point["method"] == reference:
            continue
        match = min(anchors, key=lambda a: abs(a["kl"] - point["kl"]))
        updates = f"{match['updates']:g} update{'' if match['updates'] == 1 else 's'}"
        scores = {"reward": (point["scores"], match["scores"]),
                  **{w: (point["judge_scores"][c], match["judge_scores"][c]) for c, w in judges.items()}}
        parts = []
        for name, (mine, theirs) in scores.items():
            gap = paired_difference(mine, theirs)
            phrase = gap_phrase(*gap, point["n_prompts"], scale=1, unit="", digits=2)
            parts.append(f"{name} {words[relation(*gap)]} ({phrase})")
        lines.append(f"{point['method']}, beta {point['beta']:g} (KL {point['kl']:.2f}) against {reference}, beta "
                     f"{match['beta']:g}, after {updates} (KL {match['kl']:.2f}): " + "; ".join(parts))
    return "\n".join(lines)


def train_ppo_with_checkpoints(policy, tokenizer, prompts: Sequence[str], reward_fn: Callable, *, milestones: Sequence[int],
                               settings, checkpoint_dir, evaluate: Callable, seed: int = 0, desc: str = "PPO"):
    """One PPO run, stopped at each of `milestones` (update counts) to `evaluate(causal_lm)` the policy on
    held-out prompts, then resumed from its checkpoint: the random state travels in the checkpoint, so the run
    is the one `train_ppo` would make uninterrupted. Returns the final `TrainResult` (its peak memory the
    largest of the segments) and the evaluations, one per milestone, each with `updates`."""
    from ftkit.ppo import train_ppo

    evaluations, peak = [], 0.0
    for updates in sorted(milestones):
        run = train_ppo(policy, tokenizer, prompts, reward_fn, iterations=updates, settings=settings, seed=seed,
                        checkpoint_dir=checkpoint_dir, desc=desc)
        peak = max(peak, run.peak_memory_gb or 0.0)
        state = torch.get_rng_state()  # evaluation seeds its own sampling; training must not see that
        evaluations.append({"updates": updates, **evaluate(policy.causal_lm)})
        torch.set_rng_state(state)
    run.peak_memory_gb = peak
    return run, evaluations


JUDGES = results.PREFERENCE_JUDGES  # column -> name in words


def generations_table(prompts: Sequence[str], evaluations: dict[str, dict], n: int, judges: Sequence[str] = ()):
    """The first `n` held-out prompts with each policy's response (`evaluations`: name -> `evaluate_policy`
    result), its reward and each judge's score, one row per prompt and policy."""
    import pandas as pd

    rows = []
    for i, prompt in enumerate(prompts[:n]):
        for name, result in evaluations.items():
            rows.append({"prompt": prompt.removeprefix(PROMPT_PREFIX).strip(), "policy": name,
                         "response": result["responses"][i], "reward": result["scores"][i],
                         **{judge: result["judge_scores"][judge][i] for judge in judges}})
    return pd.DataFrame(rows).set_index(["prompt", "policy"])


def plot_frontier(table, baseline: dict, judges: dict[str, str], title: str, x: str = "KL"):
    """One panel per score (the optimized reward, then each judge): every policy of a `frontier_table` as a
    point of its mean held-out score against its KL to the reference (or, with `x="updates"`, against the
    number of updates), with ±2 standard errors, and points of one method and beta joined in order of
    updates. The dashed line is the model before RL."""
    import matplotlib.pyplot as plt

    columns = {"reward": "optimized reward (reward-model score)", **{c: f"{w} (judge)" for c, w in judges.items()}}
    fig, axes = plt.subplots(1, len(columns), figsize=(5.5 * len(columns), 4.2))
    for ax, (column, label) in zip(axes, columns.items()):
        for (method, beta), group in table.groupby(["method", "beta"], sort=False):
            group = group.sort_values("updates")
            ax.errorbar(group[x], group[column], xerr=2 * group["KL_se"] if x == "KL" else None,
                        yerr=2 * group[f"{column}_se"], marker="o", capsize=3, label=f"{method}, beta {beta:g}")
        ax.axhline(baseline[column], color="gray", linestyle="--", linewidth=1, label="before RL")
        xlabel = "KL to the reference (nats per response)" if x == "KL" else "updates (one rollout each)"
        ax.set(title=label, xlabel=xlabel, ylabel="mean score over held-out prompts")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def record_policies(config, trained: dict[str, tuple], baseline: dict, *, judges: Sequence[str], task: str):
    """Record each trained policy's held-out reward through `course.results`, with its paired gain's standard
    error, per-prompt scores, beta, KL to the reference (and its SE) and each judge's paired gain and SE, so
    that notebook 08 can read preference methods by KL and judge, not by the optimized reward alone.

    `trained`: method -> (`evaluate_policy` result, beta, wall time in s, peak memory in GiB, model). Returns
    the cost of each run: wall time, peak memory and trainable parameters."""
    import pandas as pd

    from ftkit.params import count_parameters

    costs = []
    for method, (result, beta, wall_time_s, peak_memory_gb, model) in trained.items():
        count = count_parameters(model)
        gain, gain_se = paired_gain(result, baseline)
        judged = {}
        for judge in judges:
            judged[f"{judge}_gain"], judged[f"{judge}_gain_se"] = paired_gain(result, baseline, judge=judge)
        results.record(config, method, task=task, metric="held-out reward", value=result["reward"],
                       baseline=baseline["reward"], gain_se=gain_se, scores=result["scores"],
                       trainable_params=count.trainable, total_params=count.total, peak_memory_gb=peak_memory_gb,
                       wall_time_s=wall_time_s, beta=beta, kl_to_reference=result["kl"], kl_se=result["kl_se"],
                       **judged)
        costs.append({"method": method, "wall_time_s": wall_time_s, "peak_memory_gb": peak_memory_gb,
                      "trainable_params": count.trainable})
    return pd.DataFrame(costs).set_index("method")


# ---------------------------------------------------------------------------------------------------
# Rankings of K completions of one prompt, by a simulated labeller
# ---------------------------------------------------------------------------------------------------

def ranked_completion_pairs(causal_lm: nn.Module, tokenizer, prompts: Sequence[str], labeller: Callable, *,
                            k: int, max_new_tokens: int, seed: int = 0) -> tuple[list[dict], int]:
    """The recipe of InstructGPT's labellers, with `labeller` (a function like a reward function) in their
    place: sample `k` completions of each prompt, rank them by the labeller's score, and turn each ranking
    into its k-choose-2 pairs (`prompt`, `chosen`, `rejected` and both scores). Pairs the labeller scores
    equal carry no preference and are left out; returns the pairs and how many were left out."""
    if k < 2:
        raise ValueError(f"k must be at least 2 to rank completions against each other, got {k}.")
    repeated = [p for p in prompts for _ in range(k)]
    rollout = sample_responses(causal_lm, tokenizer, repeated, max_new_tokens=max_new_tokens, seed=seed)
    scores = list(map(float, labeller(rollout.prompts, rollout.responses)))
    pairs, ties = [], 0
    for first in range(0, len(repeated), k):
        group = sorted(zip(scores[first:first + k], rollout.responses[first:first + k]), key=lambda x: -x[0])
        for i in range(k):
            for j in range(i + 1, k):
                if group[i][0] == group[j][0]:
                    ties += 1
                    continue
                pairs.append({"prompt": repeated[first], "chosen": group[i][1], "rejected": group[j][1],
                              "chosen_score": group[i][0], "rejected_score": group[j][0]})
    return pairs, ties


def agreement(score_fn: Callable, pairs: Sequence[dict]) -> tuple[float, float]:
    """Share of `pairs` whose chosen completion `score_fn(prompts, completions)` scores above the rejected one,
    and its standard error. Pairs without a `prompt` (the human sentence pairs) are scored as whole texts
    after the course's `Movie review:` prompt. With no pairs (a labeller that scored every completion the
    same) there is nothing to agree on: NaN for both."""
    if not pairs:
        return float("nan"), float("nan")
    prompts = [p.get("prompt", PROMPT_PREFIX) for p in pairs]
    space = ["" if "prompt" in p else " " for p in pairs]
    chosen = score_fn(prompts, [s + p["chosen"] for s, p in zip(space, pairs)])
    rejected = score_fn(prompts, [s + p["rejected"] for s, p in zip(space, pairs)])
    agree = [float(c > r) for c, r in zip(chosen, rejected)]
    return statistics.fmean(agree), _se(agree)


def truncation_effect(sentences: Sequence[dict], tokenizer, score_fn: Callable, *, max_new_tokens: int,
                      n_words: int = 4) -> dict:
    """What cutting a review at `max_new_tokens` tokens after its opening does to its score: for every human
    sentence longer than that, the score of the sentence cut there minus the score of the whole sentence,
    paired. Returns `n` (sentences long enough), `mean_change` and its standard error `change_se`."""
    from ftkit.evaluate import paired_difference

    prompts, whole, cut = [], [], []
    for sentence in sentences:
        words = sentence["text"].split()
        rest = " " + " ".join(words[n_words:])
        ids = tokenizer(rest, add_special_tokens=False)["input_ids"]
        if len(ids) > max_new_tokens:
            prompts.append(f"{PROMPT_PREFIX} {' '.join(words[:n_words])}")
            whole.append(rest)
            cut.append(tokenizer.decode(ids[:max_new_tokens]))
    if len(prompts) < 2:
        raise ValueError(f"Only {len(prompts)} sentences run past {max_new_tokens} tokens: give more sentences.")
    change, se = paired_difference(score_fn(prompts, cut), score_fn(prompts, whole))
    return {"n": len(prompts), "mean_change": change, "change_se": se}


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
