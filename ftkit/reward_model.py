"""A reward model from preference pairs: a sequence classifier with one output, trained with the Bradley-Terry loss.

Each pair is a dict with a `chosen` and a `rejected` text (the one people preferred, and the other):

    loss        -log sigmoid(r_chosen - r_rejected)                                     `bradley_terry_loss`
    inputs      text + eos, right padding, exactly as trl's RewardTrainer tokenises     `reward_inputs`
    pooling     where the classifier reads the reward: the last non-pad token           `pooled_positions`
    batches     the chosen texts, then the rejected, in one batch                       `pair_loader`
    training    a `loss_fn` for `ftkit.train.train`                                     `pairwise_loss`
    scoring     one score per text                                                      `score_texts`
    per pair    1 where the model ranks a pair as people ranked it, else 0              `pairwise_correct`
    accuracy    share of pairs the model ranks as people ranked them                    `pairwise_accuracy`
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ftkit.batching import right_padded_batch, seeded_loader
from ftkit.evaluate import evaluation_mode
from ftkit.precision import to_device


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
    return right_padded_batch(ids, tokenizer.pad_token_id)


def pooled_positions(input_ids: torch.Tensor, pad_token_id: int) -> torch.Tensor:
    """The position whose hidden state a transformers sequence classifier pools: the rightmost non-pad token."""
    positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
    return (positions * (input_ids != pad_token_id)).argmax(-1)


def pair_loader(pairs: Sequence[dict], tokenizer, *, batch_size: int, max_length: int, shuffle: bool = False,
                seed: int = 0):
    """Batches of `batch_size` pairs: `input_ids`/`attention_mask` hold the chosen texts, then the rejected."""
    def collate(rows):
        return reward_inputs(tokenizer, [r["chosen"] for r in rows] + [r["rejected"] for r in rows], max_length)

    return seeded_loader(list(pairs), batch_size=batch_size, shuffle=shuffle, seed=seed, collate_fn=collate)


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


def pairwise_correct(reward_model: nn.Module, tokenizer, pairs: Sequence[dict], max_length: int = 64) -> list[int]:
    """1 for each pair where the reward model scores the human-chosen text higher, else 0 (a tie counts as
    wrong), in order. Two reward models' lists on the same pairs pair up (`evaluate.paired_difference`)."""
    chosen = score_texts(reward_model, tokenizer, [p["chosen"] for p in pairs], max_length=max_length)
    rejected = score_texts(reward_model, tokenizer, [p["rejected"] for p in pairs], max_length=max_length)
    return (chosen > rejected).int().tolist()


def pairwise_accuracy(reward_model: nn.Module, tokenizer, pairs: Sequence[dict], max_length: int = 64) -> float:
    """Share of pairs (0..1) where the reward model scores the human-chosen text higher."""
    correct = pairwise_correct(reward_model, tokenizer, pairs, max_length)
    return sum(correct) / len(correct)
