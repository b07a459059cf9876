"""Solutions to notebook 07's exercises (RLHF: the Bradley-Terry loss, GAE, PPO's clipped surrogate, DPO)."""
import torch
from torch.nn import functional as F


def bradley_terry(chosen_rewards, rejected_rewards):
    # -log P(chosen beats rejected) under Bradley-Terry, P = sigmoid(r_chosen - r_rejected); logsigmoid is stable.
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()


def gae(rewards, values, mask, gamma, lam):
    values = values * mask  # past the end of a response there is no value to bootstrap from
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros(rewards.shape[0])
    next_advantage = torch.zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage) * mask[:, t]
        advantages[:, t] = next_advantage
        next_value = values[:, t]
    return advantages, advantages + values


def clipped_surrogate(logprobs, old_logprobs, advantages, mask, clip_range):
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_range, 1 + clip_range) * advantages
    objective = torch.minimum(unclipped, clipped)  # the pessimistic of the two
    return -(objective * mask).sum() / mask.sum()  # a loss to minimise: minus the mean over response tokens


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_reward = beta * (policy_chosen_logps - ref_chosen_logps)
    rejected_reward = beta * (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(chosen_reward - rejected_reward).mean()
