import torch

from ftkit import batching


class CharTokenizer:
    """A stand-in tokenizer: one id per character, eos id 0."""

    eos_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [ord(c) for c in text]}


def test_blocks_pack_texts_with_separators_and_drop_the_tail():
    blocks = batching.pack_into_blocks(["abc", "de"], CharTokenizer(), block_size=2)
    assert blocks.tolist() == [[97, 98], [99, 0], [100, 101]]  # "ab" "c<eos>" "de", tail "<eos>" dropped


def test_block_loader_labels_are_the_inputs_and_shuffle_repeats():
    blocks = torch.arange(20).view(10, 2)
    first = [b["input_ids"].tolist() for b in batching.block_loader(blocks, batch_size=4, shuffle=True, seed=1)]
    again = [b["input_ids"].tolist() for b in batching.block_loader(blocks, batch_size=4, shuffle=True, seed=1)]
    assert first == again and sorted(sum(first, [])) == blocks.tolist()
    batch = next(iter(batching.block_loader(blocks, batch_size=4)))
    assert torch.equal(batch["input_ids"], batch["labels"])


def test_too_little_text_says_so():
    import pytest

    with pytest.raises(ValueError, match="fewer than one block"):
        batching.pack_into_blocks(["a"], CharTokenizer(), block_size=8)
