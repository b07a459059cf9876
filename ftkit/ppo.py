"""PPO with a KL penalty, written out one small function per idea, each with a unit test.

trl no longer ships PPO, so the loop is here:

    rollout     sample a response to each prompt from the policy                        `sample_responses`
    score       `reward_fn(prompts, responses)`, e.g. a reward model's score            (the caller's)
    KL          log pi(token) - log pi_ref(token), per response token                  `per_token_kl`
    reward      -beta * KL on every token, plus the score on the last one               `kl_penalized_rewards`
    advantages  generalised advantage estimation over the response                      `gae`
    update      clipped surrogate + clipped value loss - entropy bonus, a few epochs    `ppo_losses`

The policy is a peft LoRA model plus a value head (`PolicyWithValue`): with the adapter disabled it *is*
the frozen reference model, so no second copy of the weights is needed. The reward model that usually
scores the responses is `ftkit.reward_model`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ftkit.batching import left_padded_batch
from ftkit.evaluate import evaluation_mode
from ftkit.precision import master_dtype, model_device, model_dtype, precision_for, to_device
from ftkit.train import TrainingRun, TrainResult, optimizer_step


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
    """The prompts tokenised (no special tokens) and padded on the left: `input_ids`, `attention_mask` (B, Q)."""
    ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    return left_padded_batch(ids, tokenizer.pad_token_id)


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
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr)
    device = model_device(policy)
    precision = precision_for(device)
    scaler = precision.grad_scaler()
    run = TrainingRun(iterations, device=device, desc=desc, model=policy, optimizer=optimizer, scaler=scaler,
                      checkpoint_dir=checkpoint_dir, checkpoint_every=1)
    order = random.Random(seed)
    batches = [order.sample(list(prompts), settings.rollout_size) for _ in range(iterations)]
    with run:
        for iteration in run.steps():
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
            run.result.losses.append((iteration, stats["loss"]))
            run.result.evaluations.append(stats)
            run.show(score=f"{stats['score']:.2f}", kl=f"{stats['kl']:.2f}")
    policy.eval()
    return run.result

