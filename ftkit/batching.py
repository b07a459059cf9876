"""Turning data sets into batches: tokenised classification batches and packed language-model blocks.

Batches are built on the CPU, as a DataLoader's collate function builds them; `ftkit.train.train` and the
evaluation helpers move each one to the device of the model it is for.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader


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

    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collate)


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

    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(list(blocks), batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collate)


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
        rows.append((prompt_ids + completion_ids, [-100] * len(prompt_ids) + completion_ids))

    def collate(batch):
        width = max(len(ids) for ids, _ in batch)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        attention_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}

    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(rows, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=collate)
