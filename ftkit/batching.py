"""Turning data sets into batches: tokenised classification batches and packed language-model blocks.

Batches are built on the CPU, as a DataLoader's collate function builds them; `ftkit.train.train` and the
evaluation helpers move each one to the device of the model it is for.

The pieces every loader of the library shares, one copy each:

    seeded order    a DataLoader whose shuffle repeats run to run                 `seeded_loader`
    padding         token-id lists to one (batch, longest) tensor                  `pad_to_longest`
    training batch  right padding: ids, attention mask, labels (-100 on padding)   `right_padded_batch`
    generation      left padding, so every prompt ends at the last position        `left_padded_batch`
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.utils.data import DataLoader

from ftkit.causal_lm import IGNORE_INDEX


def seeded_loader(items, *, batch_size: int, shuffle: bool = False, seed: int = 0,
                  collate_fn: Callable | None = None, sampler: Sequence[int] | None = None) -> DataLoader:
    """A DataLoader of `batch_size` items a batch (the last one may be smaller).

    With `shuffle`, the order comes from its own generator seeded with `seed` (not the global RNG), so it
    repeats run to run and on resume; without, the items come in order, or in `sampler`'s order of indices.
    """
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(items, batch_size=batch_size, shuffle=shuffle, generator=generator, sampler=sampler,
                      collate_fn=collate_fn)


def pad_to_longest(sequences: Sequence[Sequence[int]], pad_value: int, *, side: str = "right") -> torch.Tensor:
    """The sequences as one int64 tensor of shape (len(sequences), longest), each filled out with `pad_value`
    on its right (`side="right"`) or on its left (`side="left"`)."""
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', not {side!r}.")
    width = max(len(s) for s in sequences)
    if side == "right":
        return torch.tensor([list(s) + [pad_value] * (width - len(s)) for s in sequences])
    return torch.tensor([[pad_value] * (width - len(s)) + list(s) for s in sequences])


def right_padded_batch(input_ids: Sequence[Sequence[int]], pad_token_id: int,
                       labels: Sequence[Sequence[int]] | None = None) -> dict[str, torch.Tensor]:
    """A training batch of token-id lists, padded on the right to the longest (all (batch, longest), int64):
    `input_ids` (padding = `pad_token_id`), `attention_mask` (1 on real tokens, 0 on padding) and, when
    `labels` are given (one list per row, as long as its ids), `labels` with -100 (`IGNORE_INDEX`) on padding."""
    batch = {"input_ids": pad_to_longest(input_ids, pad_token_id),
             "attention_mask": pad_to_longest([[1] * len(ids) for ids in input_ids], 0)}
    if labels is not None:
        batch["labels"] = pad_to_longest(labels, IGNORE_INDEX)
    return batch


def left_padded_batch(input_ids: Sequence[Sequence[int]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Prompts for generation, padded on the left to the longest: `input_ids` and `attention_mask`, both
    (batch, longest), int64. A decoder continues from the last position, so every prompt must end there."""
    return {"input_ids": pad_to_longest(input_ids, pad_token_id, side="left"),
            "attention_mask": pad_to_longest([[1] * len(ids) for ids in input_ids], 0, side="left")}


def classification_loader(dataset, tokenizer, *, batch_size: int, max_length: int, shuffle: bool = False,
                          seed: int = 0, text_column: str = "text", label_column: str = "label") -> DataLoader:
    """Batches of `input_ids`, `attention_mask` and `labels`, padded per batch to its longest text.

    Shuffling uses its own seeded generator, so the order repeats run to run (and on resume).
    """
    def collate(rows):
        batch = tokenizer([r[text_column] for r in rows], padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt")
        batch["labels"] = torch.tensor([r[label_column] for r in rows])
        return dict(batch)

    return seeded_loader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, collate_fn=collate)


def pack_into_blocks(texts: list[str], tokenizer, block_size: int, separator: str | None = None) -> torch.Tensor:
    """Tokenise `texts`, join them with the end-of-sequence token, cut into `block_size`-token rows.

    Returns a (n_blocks, block_size) tensor of token ids; the incomplete tail is dropped. Packing wastes
    no compute on padding, which is how pre-training and continued pre-training feed a causal LM.
    """
    separator_ids = tokenizer(separator, add_special_tokens=False)["input_ids"] if separator else [tokenizer.eos_token_id]
    ids: list[int] = []
    for text in texts:
        ids += tokenizer(text, add_special_tokens=False)["input_ids"] + separator_ids
    n_blocks = len(ids) // block_size
    if n_blocks == 0:
        raise ValueError(f"The texts hold {len(ids)} tokens, fewer than one block of {block_size}: "
                         "give more text or a smaller block_size.")
    return torch.tensor(ids[: n_blocks * block_size]).view(n_blocks, block_size)


def block_loader(blocks: torch.Tensor, *, batch_size: int, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """Batches of packed blocks for causal-LM training: `input_ids` and `labels` (the same ids;
    transformers shifts the labels inside the model)."""
    def collate(rows):
        ids = torch.stack(rows)
        return {"input_ids": ids, "labels": ids.clone()}

    return seeded_loader(list(blocks), batch_size=batch_size, shuffle=shuffle, seed=seed, collate_fn=collate)


def prompt_completion_loader(prompts: list[str], completions: list[str], tokenizer, *, batch_size: int,
                             max_length: int, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """Batches for supervised fine-tuning of a causal LM: prompt + completion + eos, loss on the completion.

    Labels are the input ids with the prompt's tokens and the padding set to -100, so the model learns to
    write the completion, not to copy the prompt. Sequences longer than `max_length` tokens lose the
    start of their prompt (the completion is kept whole). Padding is on the right, per batch.
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions: they must pair up.")
    rows = []
    for prompt, completion in zip(prompts, completions):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(completion_ids) >= max_length:
            raise ValueError(f"A completion of {len(completion_ids)} tokens leaves no room for its prompt "
                             f"within max_length={max_length}: raise max_length.")
        prompt_ids = prompt_ids[-(max_length - len(completion_ids)):]
        rows.append((prompt_ids + completion_ids, [IGNORE_INDEX] * len(prompt_ids) + completion_ids))

    def collate(batch):
        return right_padded_batch([ids for ids, _ in batch], tokenizer.pad_token_id, [lab for _, lab in batch])

    return seeded_loader(rows, batch_size=batch_size, shuffle=shuffle, seed=seed, collate_fn=collate)
