"""Direct preference optimisation (Rafailov et al. 2023): the loss, from sequence log-probabilities.

DPO trains the policy on preference pairs directly, with no reward model and no sampling. Its implicit
reward of a response is beta * (log pi(response) - log pi_ref(response)); the loss is the Bradley-Terry
loss (`ftkit.reward_model.bradley_terry_loss`) on those implicit rewards:

    loss = -log sigmoid(beta * ((log pi(chosen) - log pi_ref(chosen)) - (log pi(rejected) - log pi_ref(rejected))))

averaged over the pairs. The reference terms play the part of PPO's KL penalty: the policy gains only by
moving *relative to* the reference. This is trl's `DPOTrainer` default (`loss_type="sigmoid"`, standard
reverse-KL DPO, no label smoothing).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor, ref_chosen_logps: torch.Tensor,
             ref_rejected_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's sigmoid loss, averaged over the batch: a scalar tensor.

    Every argument is a (B,) tensor of *sequence* log-probabilities: log p(response | prompt), the sum of the
    response tokens' log-probabilities (prompt and padding tokens excluded), under the policy being trained
    (`policy_*`) or the frozen reference model (`ref_*`), for the human-chosen and the rejected response of
    each of B pairs. `beta` (> 0) scales the implicit reward; a larger beta keeps the policy nearer the reference.
    """
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    return -F.logsigmoid(beta * (chosen_logratios - rejected_logratios)).mean()


def implicit_rewards(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's implicit reward of each response, beta * (log pi - log pi_ref): shapes (B,), (B,) -> (B,).
    trl logs its mean as `rewards/chosen` and `rewards/rejected`."""
    return beta * (policy_logps - ref_logps)
