"""Turning data sets into batches: tokenised classification batches and packed language-model blocks."""
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
