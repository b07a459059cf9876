"""ftkit.dpo agrees with trl's DPOTrainer: the loss and the implicit rewards it logs, computed by trl's own code.

In the installed trl (1.16) the loss is not a separate function: it sits inside `DPOTrainer._compute_loss`,
which runs the model, sums the completion tokens' log-probabilities and then, for the default
`loss_type="sigmoid"` and `f_divergence_type="reverse_kl"`, computes (trl/trainer/dpo_trainer.py)

    chosen_logratios = chosen_logps - ref_chosen_logps
    rejected_logratios = rejected_logps - ref_rejected_logps
    delta_score = chosen_scores - rejected_scores          # the log-ratios themselves for reverse KL
    per_sequence_loss = -F.logsigmoid(self.beta * delta_score)
    loss += per_sequence_loss.mean() * loss_weight

We call that method itself, unbound, on a stand-in for the trainer's state and a stand-in model whose
per-token log-probabilities sum to the sequence log-probabilities we choose, with the reference log-probs
passed as precomputed columns (as `precompute_ref_logps=True` does).
"""
import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

from ftkit import dpo


class _Accelerator:
    device = torch.device("cpu")

    @staticmethod
    def gather_for_metrics(x):
        return x

    @staticmethod
    def gather(x):
        return x


def _trl_dpo(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    """trl's `DPOTrainer._compute_loss` on sequence log-probabilities; returns (loss, logged metrics)."""
    from trl import DPOTrainer

    n = len(policy_chosen)
    trainer = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=_Accelerator(), beta=beta, loss_types=["sigmoid"],
        loss_weights=[1.0], f_divergence_type="reverse_kl", ld_alpha=None, precompute_ref_logps=True,
        use_weighting=False, aux_loss_enabled=False, _metrics={"train": defaultdict(list)},
        _total_train_tokens=0, _tp_size=1)
    # Two positions per sequence: a prompt token, then one completion token whose log-prob is the whole
    # sequence's log-prob (trl sums the shifted completion positions, here exactly one).
    per_token = torch.cat([policy_chosen, policy_rejected]).unsqueeze(1)  # (2n, 1): the batch is [chosen, rejected]

    def model(**kwargs):
        assert kwargs["fused_lm_head"] and kwargs["labels"].shape == (2 * n, 2)
        return SimpleNamespace(log_probs=per_token, entropy=torch.zeros(2 * n, 1), mean_logits=torch.zeros(2 * n, 1),
                               is_top1=torch.zeros(2 * n, 1, dtype=torch.bool))

    inputs = {"input_ids": torch.ones(2 * n, 2, dtype=torch.long), "attention_mask": torch.ones(2 * n, 2, dtype=torch.long),
              "completion_mask": torch.tensor([[0, 1]] * (2 * n)), "ref_chosen_logps": ref_chosen,
              "ref_rejected_logps": ref_rejected}
    loss = DPOTrainer._compute_loss(trainer, model, inputs, return_outputs=False)
    return loss, trainer._metrics["train"]


def _logps(seed, n=6):
    g = torch.Generator().manual_seed(seed)
    return [-20 * torch.rand(n, generator=g, dtype=torch.float64) for _ in range(4)]


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_dpo_loss_equals_trls_dpo_trainer(beta):
    logps = _logps(int(beta * 10))
    ours = dpo.dpo_loss(*logps, beta)
    theirs, logged = _trl_dpo(*logps, beta)
    assert ours.shape == ()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-12)
    # The implicit rewards trl logs as rewards/chosen and rewards/rejected (batch means).
    assert logged["rewards/chosen"][0] == pytest.approx(dpo.implicit_rewards(logps[0], logps[2], beta).mean().item())
    assert logged["rewards/rejected"][0] == pytest.approx(dpo.implicit_rewards(logps[1], logps[3], beta).mean().item())


def test_dpo_loss_is_log_2_at_the_reference_and_falls_as_the_chosen_gains():
    ref_chosen, ref_rejected = torch.tensor([-12.0, -30.0]), torch.tensor([-9.0, -25.0])
    # At the start the policy is the reference: the loss is log 2 whatever the texts' likelihoods.
    assert dpo.dpo_loss(ref_chosen, ref_rejected, ref_chosen, ref_rejected, beta=0.1).item() == pytest.approx(math.log(2))
    better = dpo.dpo_loss(ref_chosen + 1.0, ref_rejected - 1.0, ref_chosen, ref_rejected, beta=0.1)
    assert better.item() < math.log(2)
    # It is the Bradley-Terry loss on the implicit rewards.
    expected = F.binary_cross_entropy_with_logits(torch.tensor([0.2, 0.2]), torch.ones(2))
    assert better.item() == pytest.approx(expected.item())


def test_dpo_loss_gives_gradients_to_the_policy_only_through_the_log_ratio():
    policy_chosen = torch.tensor([-10.0, -4.0], requires_grad=True)
    policy_rejected = torch.tensor([-8.0, -6.0], requires_grad=True)
    loss = dpo.dpo_loss(policy_chosen, policy_rejected, torch.tensor([-10.0, -5.0]), torch.tensor([-8.0, -5.0]), beta=0.5)
    loss.backward()
    assert (policy_chosen.grad < 0).all() and (policy_rejected.grad > 0).all()  # raise chosen, lower rejected
    assert torch.allclose(policy_chosen.grad, -policy_rejected.grad)
