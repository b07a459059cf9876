"""RLHF written out: preference pairs from human ratings, a Bradley-Terry reward model, and PPO with a KL penalty.

trl no longer ships PPO, so the loop is here, one small function per idea (each has a unit test):

    rollout     sample a response to each prompt from the policy                        `sample_responses`
    score       reward model on prompt + response                                       `score_texts`
    KL          log pi(token) - log pi_ref(token), per response token                  `per_token_kl`
    reward      -beta * KL on every token, plus the score on the last one               `kl_penalized_rewards`
    advantages  generalised advantage estimation over the response                      `gae`
    update      clipped surrogate + clipped value loss - entropy bonus, a few epochs    `ppo_losses`

The policy is a peft LoRA model plus a value head (`PolicyWithValue`): with the adapter disabled it *is*
the frozen reference model, so no second copy of the weights is needed.
"""
from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ftkit.evaluate import evaluation_mode
from ftkit.precision import master_dtype, model_device, model_dtype, precision_for, to_device
from ftkit.train import PeakMemory, TrainResult, load_checkpoint, optimizer_step, save_checkpoint

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
# The reward model: a sequence classifier with one output, trained with the Bradley-Terry loss
# ---------------------------------------------------------------------------------------------------

def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """-log sigmoid(r_chosen - r_rejected), averaged: the negative log-likelihood that the human's choice
    wins under the Bradley-Terry model P(a beats b) = sigmoid(r_a - r_b)."""
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()


def reward_inputs(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    """Tokenise texts for the reward model exactly as trl's RewardTrainer does: text + eos, right padding.

    When pad == eos (SmolLM2, Llama chat models), transformers' sequence classifier reads the reward at the
    last token that is *not* the pad id: the token before the appended eos. That is consistent as long as
    training and scoring tokenise the same way, which is why both go through this function. The tensors are on
    the CPU (it is `pair_loader`'s collate function); `score_texts` and `ftkit.train.train` move them.
    """
    ids = [tokenizer(t + tokenizer.eos_token, add_special_tokens=False)["input_ids"][:max_length] for t in texts]
    width = max(len(x) for x in ids)
    pad = tokenizer.pad_token_id
    return {"input_ids": torch.tensor([x + [pad] * (width - len(x)) for x in ids]),
            "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])}


def pooled_positions(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """The position whose hidden state a transformers sequence classifier pools: the rightmost non-pad token."""
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
    return (positions * (input_ids != pad_token_id)).argmax(-1)


def pair_loader(pairs: Sequence[dict], tokenizer, *, batch_size: int, max_length: int, shuffle: bool = False,
                seed: int = 0):
    """Batches of `batch_size` pairs: `input_ids`/`attention_mask` hold the chosen texts, then the rejected."""
    from torch.utils.data import DataLoader

    def collate(rows):
        return reward_inputs(tokenizer, [r["chosen"] for r in rows] + [r["rejected"] for r in rows], max_length)

    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(list(pairs), batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collate)


def pairwise_loss(reward_model: nn.Module, batch: dict) -> torch.Tensor:
    """The Bradley-Terry loss of one `pair_loader` batch (a `loss_fn` for `ftkit.train.train`)."""
    rewards = reward_model(**batch).logits.squeeze(-1)
    chosen, rejected = rewards.chunk(2)
    return bradley_terry_loss(chosen, rejected)


def score_texts(reward_model: nn.Module, tokenizer, texts: Sequence[str], *, batch_size: int = 32,
                max_length: int = 64) -> torch.Tensor:
    """The reward model's score of each text, shape (len(texts),)."""
    scores = []
    with evaluation_mode(reward_model) as device:
        for start in range(0, len(texts), batch_size):
            batch = to_device(reward_inputs(tokenizer, texts[start:start + batch_size], max_length), device)
            scores.append(reward_model(**batch).logits[:, 0].float().cpu())
    return torch.cat(scores)


def reward_function(reward_model: nn.Module, tokenizer, max_length: int = 64) -> Callable:
    """`reward(prompts, completions, **_) -> list[float]`: the reward model's score of each review. The
    signature suits both `train_ppo` and trl's GRPO/RLOO trainers."""
    def reward(prompts, completions, **_):
        texts = [review_text(p, c) for p, c in zip(prompts, completions)]
        return score_texts(reward_model, tokenizer, texts, max_length=max_length).tolist()

    return reward


def pairwise_accuracy(reward_model: nn.Module, tokenizer, pairs: Sequence[dict], max_length: int = 64) -> float:
    """Share of pairs (0..1) where the reward model scores the human-chosen text higher."""
    chosen = score_texts(reward_model, tokenizer, [p["chosen"] for p in pairs], max_length=max_length)
    rejected = score_texts(reward_model, tokenizer, [p["rejected"] for p in pairs], max_length=max_length)
    return (chosen > rejected).float().mean().item()


# ---------------------------------------------------------------------------------------------------
# The policy: a LoRA decoder plus a value head
# ---------------------------------------------------------------------------------------------------

class PolicyWithValue(nn.Module):
    """A causal LM (usually a peft LoRA model) with a linear value head on its last hidden state.

    `forward` returns `(logits, values)`, both over every position; values are fp32 (or fp64 beside an fp64
    model) whatever the compute dtype. The value head starts at zero so the first value estimates are 0
    rather than noise; it lives on the causal LM's device, in fp32 (the master copy).
    """

    def __init__(self, causal_lm: nn.Module):
        super().__init__()
        self.causal_lm = causal_lm
        self.value_head = nn.Linear(causal_lm.config.hidden_size, 1, device=model_device(causal_lm),
                                    dtype=master_dtype(model_dtype(causal_lm)))
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.causal_lm(input_ids=input_ids, attention_mask=attention_mask,
                             position_ids=position_ids(attention_mask), output_hidden_states=True)
        hidden = out.hidden_states[-1].to(self.value_head.weight.dtype)
        # Under autocast the head's product comes out in 16 bits; the value losses are computed in full precision.
        values = self.value_head(hidden).squeeze(-1).to(self.value_head.weight.dtype)
        return out.logits, values


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as `generate` uses them: 0 at each sequence's first real token."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


@dataclass
class Rollout:
    """Prompts and sampled responses: `sequences` (B, Q + T) is left-padded prompts (width Q) then responses
    (T tokens, padded after the first eos); `response_mask` (B, T) is 1 up to and including that eos. The
    tensors stay on the device of the model that sampled them, where the PPO update reads them again."""

    prompts: list[str]
    responses: list[str]
    sequences: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor

    @property
    def prompt_width(self) -> int:
        return self.sequences.shape[1] - self.response_mask.shape[1]


def sample_responses(model: nn.Module, tokenizer, prompts: Sequence[str], *, max_new_tokens: int,
                     seed: int | None = None) -> Rollout:
    """Sample one response per prompt from the full distribution (temperature 1, no top-k/top-p), as PPO's
    KL estimate assumes. `seed` makes the sample repeatable (for evaluation)."""
    if seed is not None:
        torch.manual_seed(seed)  # seeds the GPU's generator too
    with evaluation_mode(model) as device:
        encoded = to_device(_left_padded(tokenizer, prompts), device)
        sequences = model.generate(**encoded, do_sample=True, top_k=0, top_p=1.0, temperature=1.0,
                                   max_new_tokens=max_new_tokens, min_new_tokens=1,
                                   pad_token_id=tokenizer.pad_token_id)
    responses = sequences[:, encoded["input_ids"].shape[1]:]
    is_eos = responses == tokenizer.eos_token_id
    # 1 up to and including the first eos: tokens after it are padding that generate() appended.
    response_mask = ((is_eos.cumsum(-1) - is_eos.long()) == 0).long()
    attention_mask = torch.cat([encoded["attention_mask"], response_mask], dim=1)
    texts = tokenizer.batch_decode(responses * response_mask + tokenizer.pad_token_id * (1 - response_mask),
                                   skip_special_tokens=True)
    return Rollout(list(prompts), texts, sequences, attention_mask, response_mask)


def _left_padded(tokenizer, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # a decoder continues from the last token: pad on the left
    try:
        return dict(tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False))
    finally:
        tokenizer.padding_side = side


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) under `logits`: shapes (B, T, V) and (B, T) -> (B, T)."""
    return torch.gather(F.log_softmax(logits.float(), dim=-1), 2, tokens.unsqueeze(-1)).squeeze(-1)


def response_slice(rollout: Rollout, per_position: torch.Tensor) -> torch.Tensor:
    """The entries of a (B, Q + T, ...) tensor at the positions that *predict* the response tokens (Q-1 .. Q+T-2)."""
    q, t = rollout.prompt_width, rollout.response_mask.shape[1]
    return per_position[:, q - 1:q + t - 1]


def response_logprobs(causal_lm: nn.Module, rollout: Rollout) -> torch.Tensor:
    """log pi(response token | context) for every response token under `causal_lm`, shape (B, T)."""
    device = model_device(causal_lm)
    sequences, attention_mask = rollout.sequences.to(device), rollout.attention_mask.to(device)
    logits = causal_lm(input_ids=sequences, attention_mask=attention_mask,
                       position_ids=position_ids(attention_mask)).logits
    return token_logprobs(response_slice(rollout, logits), sequences[:, rollout.prompt_width:])


def per_token_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """log pi(token) - log pi_ref(token) at each sampled token: an unbiased per-sample estimate whose sum
    over a response estimates KL(pi || pi_ref) for that prompt. Zero when the policy equals the reference."""
    return logprobs - ref_logprobs


def kl_penalized_rewards(scores: torch.Tensor, kl: torch.Tensor, response_mask: torch.Tensor,
                         beta: float) -> torch.Tensor:
    """Per-token rewards (B, T): -beta * KL on every response token, plus the reward model's score on the
    last one (the score judges the whole response, so it arrives when the response ends)."""
    rewards = -beta * kl * response_mask
    last = response_mask.sum(-1).long() - 1
    rewards[torch.arange(len(scores), device=rewards.device), last] += scores.to(rewards.device)
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over response tokens, all (B, T).

    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1}; after a response
    ends there is no next value. Returns `(advantages, returns)` with returns = advantages + values.
    """
    values = values * mask
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    return advantages, advantages + values


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over the masked entries (advantages, so that the step size does not
    depend on the reward's scale)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def clipped_surrogate_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                           mask: torch.Tensor, clip_range: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's policy loss: mean of max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)), ratio = pi / pi_old.

    Where the ratio has left the clip range in the direction the advantage favours, the clipped term wins
    and its gradient is zero: one batch cannot push the policy far. Returns `(loss, clip_fraction)`.
    """
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    return loss, clip_fraction


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                       clip_range: float = 0.2) -> torch.Tensor:
    """0.5 * max((V - R)^2, (V_clipped - R)^2): the value head also moves at most `clip_range` per batch."""
    clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the next-token distributions at the masked positions."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    return masked_mean(-(log_p.exp() * log_p).sum(-1), mask)


# ---------------------------------------------------------------------------------------------------
# The PPO loop
# ---------------------------------------------------------------------------------------------------

@dataclass
class PPOSettings:
    """PPO's knobs. `beta` weighs the KL penalty; `epochs` passes over each rollout in minibatches."""

    beta: float = 0.1
    lr: float = 1e-4
    rollout_size: int = 16
    minibatch_size: int = 8
    epochs: int = 2
    max_new_tokens: int = 16
    clip_range: float = 0.2
    value_clip_range: float = 0.2
    value_coef: float = 0.1
    entropy_coef: float = 0.0
    gamma: float = 1.0
    lam: float = 0.95
    max_grad_norm: float = 1.0


def collect_experience(policy: PolicyWithValue, tokenizer, prompts: Sequence[str], reward_fn: Callable,
                       settings: PPOSettings) -> dict:
    """One rollout with everything the update needs, computed once without gradients: old log-probs and
    values, reference log-probs (adapter disabled), scores, KL-penalised rewards, advantages, returns.

    Everything is computed on the policy's device, in the compute dtype its update will use (`evaluation_mode`
    autocasts as `train_ppo` does), so that the first update's probability ratios start at 1.
    """
    rollout = sample_responses(policy.causal_lm, tokenizer, prompts, max_new_tokens=settings.max_new_tokens)
    mask = rollout.response_mask.float()
    with evaluation_mode(policy) as device:
        logits, values = policy(rollout.sequences, rollout.attention_mask)
        old_logprobs = token_logprobs(response_slice(rollout, logits), rollout.sequences[:, rollout.prompt_width:])
        old_values = response_slice(rollout, values)
        with policy.causal_lm.disable_adapter():
            ref_logprobs = response_logprobs(policy.causal_lm, rollout)
    scores = torch.as_tensor(reward_fn(rollout.prompts, rollout.responses), dtype=torch.float32, device=device)
    kl = per_token_kl(old_logprobs, ref_logprobs) * mask
    rewards = kl_penalized_rewards(scores, kl, mask, settings.beta)
    advantages, returns = gae(rewards, old_values, mask, settings.gamma, settings.lam)
    return {"rollout": rollout, "mask": mask, "old_logprobs": old_logprobs, "old_values": old_values,
            "advantages": whiten(advantages, mask), "returns": returns, "scores": scores, "kl": kl}


def ppo_losses(policy: PolicyWithValue, experience: dict, rows: torch.Tensor,
               settings: PPOSettings) -> tuple[torch.Tensor, dict]:
    """The PPO loss on the minibatch `rows` of a rollout: policy loss + value_coef * value loss
    - entropy_coef * entropy, and its parts for logging."""
    rollout, mask = experience["rollout"], experience["mask"][rows]
    logits, values = policy(rollout.sequences[rows], rollout.attention_mask[rows])
    response_logits = response_slice(rollout, logits)
    logprobs = token_logprobs(response_logits, rollout.sequences[rows, rollout.prompt_width:])
    policy_loss, clip_fraction = clipped_surrogate_loss(logprobs, experience["old_logprobs"][rows],
                                                        experience["advantages"][rows], mask, settings.clip_range)
    value_loss = clipped_value_loss(response_slice(rollout, values), experience["old_values"][rows],
                                    experience["returns"][rows], mask, settings.value_clip_range)
    bonus = entropy(response_logits, mask)
    loss = policy_loss + settings.value_coef * value_loss - settings.entropy_coef * bonus
    return loss, {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(),
                  "clip_fraction": clip_fraction.item(), "entropy": bonus.item()}


def train_ppo(policy: PolicyWithValue, tokenizer, prompts: Sequence[str], reward_fn: Callable, *,
              iterations: int, settings: PPOSettings, seed: int = 0, checkpoint_dir=None,
              desc: str = "PPO") -> TrainResult:
    """`iterations` PPO updates, each on a fresh rollout of `settings.rollout_size` prompts drawn in a
    seeded order from `prompts`. `reward_fn(prompts, responses)` returns one score per response.

    Shows a progress bar; returns a `TrainResult` whose `evaluations` hold one dict per update: mean score,
    mean KL (sum over a response), response length, clip fraction, losses. With `checkpoint_dir` the
    adapter, value head and optimizer are saved after every update and a rerun resumes.
    """
    from tqdm.auto import tqdm

    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr)
    device = model_device(policy)
    precision = precision_for(device)
    scaler = precision.grad_scaler()
    result = TrainResult()
    start = load_checkpoint(checkpoint_dir, policy, optimizer, None, result, scaler) if checkpoint_dir else 0
    result.resumed_from_step = start
    order = random.Random(seed)
    batches = [order.sample(list(prompts), settings.rollout_size) for _ in range(iterations)]
    elapsed_before, began = result.wall_time_s, time.perf_counter()
    with PeakMemory(device) as peak, tqdm(total=iterations, initial=start, desc=desc) as bar:
        for iteration in range(start + 1, iterations + 1):
            experience = collect_experience(policy, tokenizer, batches[iteration - 1], reward_fn, settings)
            parts = []
            policy.train()
            for _ in range(settings.epochs):
                # The order is drawn on the CPU's generator (the same draws on every device), then moved.
                for rows in torch.randperm(settings.rollout_size).to(device).split(settings.minibatch_size):
                    with precision.autocast():
                        loss, logged = ppo_losses(policy, experience, rows, settings)
                    optimizer_step(loss, optimizer, scaler, trainable, settings.max_grad_norm)
                    parts.append({"loss": loss.item(), **logged})
            stats = {"step": iteration, "score": experience["scores"].mean().item(),
                     "kl": experience["kl"].sum(-1).mean().item(),
                     "response_tokens": experience["mask"].sum(-1).mean().item(),
                     **{k: sum(p[k] for p in parts) / len(parts) for k in parts[0]}}
            result.losses.append((iteration, stats["loss"]))
            result.evaluations.append(stats)
            bar.update(1)
            bar.set_postfix(score=f"{stats['score']:.2f}", kl=f"{stats['kl']:.2f}")
            result.wall_time_s = elapsed_before + time.perf_counter() - began
            if checkpoint_dir:
                save_checkpoint(checkpoint_dir, policy, optimizer, None, iteration, result, scaler)
    policy.eval()
    result.steps = iterations
    result.peak_memory_gb = peak.peak_gb
    return result


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
