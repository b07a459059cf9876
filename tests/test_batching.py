import pytest
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


def test_seeded_loader_repeats_its_shuffle_without_touching_the_global_rng():
    from torch.utils.data import DataLoader

    items = list(range(10))
    torch.manual_seed(0)
    state = torch.random.get_rng_state()
    first = [b.tolist() for b in batching.seeded_loader(items, batch_size=4, shuffle=True, seed=5)]
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is not drawn from
    torch.manual_seed(99)  # another global state: the same order
    again = [b.tolist() for b in batching.seeded_loader(items, batch_size=4, shuffle=True, seed=5)]
    # the order of a DataLoader with a generator seeded the same way (the course's numbers depend on it)
    reference = DataLoader(items, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(5))
    assert first == again == [b.tolist() for b in reference]
    assert [len(b) for b in first] == [4, 4, 2] and sorted(sum(first, [])) == items and sum(first, []) != items
    other = [b.tolist() for b in batching.seeded_loader(items, batch_size=4, shuffle=True, seed=6)]
    assert other != first
    assert [b.tolist() for b in batching.seeded_loader(items, batch_size=4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    in_order = batching.seeded_loader(items, batch_size=3, sampler=[9, 0, 5, 1], collate_fn=list)
    assert list(in_order) == [[9, 0, 5], [1]]


def test_pad_to_longest_fills_the_right_or_the_left():
    right = batching.pad_to_longest([[1, 2, 3], [4], []], 0)
    assert right.dtype == torch.int64 and right.tolist() == [[1, 2, 3], [4, 0, 0], [0, 0, 0]]
    assert batching.pad_to_longest([[1, 2, 3], [4]], -1, side="left").tolist() == [[1, 2, 3], [-1, -1, 4]]
    with pytest.raises(ValueError, match="side must be"):
        batching.pad_to_longest([[1]], 0, side="middle")


def test_right_padded_batch_masks_padding_and_ignores_its_labels():
    batch = batching.right_padded_batch([[5, 6, 7], [8]], pad_token_id=2, labels=[[-100, 6, 7], [8]])
    assert list(batch) == ["input_ids", "attention_mask", "labels"]
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 2, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert all(t.dtype == torch.int64 for t in batch.values())
    assert list(batching.right_padded_batch([[5], [6, 7]], 0)) == ["input_ids", "attention_mask"]


def test_left_padded_batch_ends_every_prompt_at_the_last_position():
    batch = batching.left_padded_batch([[5, 6, 7], [8]], pad_token_id=2)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [2, 2, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert all(t.dtype == torch.int64 for t in batch.values())


def test_prompt_completion_batches_are_right_padded_with_masked_prompts():
    tokenizer = CharTokenizer()
    tokenizer.pad_token_id = 1
    batch = next(iter(batching.prompt_completion_loader(["ab", "c"], ["d", "ef"], tokenizer, batch_size=2,
                                                        max_length=8)))
    assert batch["input_ids"].tolist() == [[97, 98, 100, 0], [99, 101, 102, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 100, 0], [-100, 101, 102, 0]]
    short = batching.prompt_completion_loader(["abc", "d"], ["e", "f"], tokenizer, batch_size=2, max_length=8)
    batch = next(iter(short))
    assert batch["input_ids"].tolist() == [[97, 98, 99, 101, 0], [100, 102, 0, 1, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, -100, 101, 0], [-100, 102, 0, -100, -100]]
