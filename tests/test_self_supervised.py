"""course.self_supervised: notebook 01's blocks, perplexity tables and sentences, and its LoRA wrapper."""
import torch

from course import self_supervised
from test_causal_lm import tiny  # noqa: F401 (the same tiny Llama fixture)


def test_sample_blocks_is_seeded_and_bounded():
    blocks = torch.arange(40).view(10, 4)
    a, b = self_supervised.sample_blocks(blocks, 3, seed=1), self_supervised.sample_blocks(blocks, 3, seed=1)
    assert a.shape == (3, 4) and torch.equal(a, b)
    assert self_supervised.sample_blocks(blocks, None).shape == (10, 4)
    assert self_supervised.sample_blocks(blocks, 99).shape == (10, 4)


def test_perplexity_change_in_words_and_as_a_table():
    assert "fell" in self_supervised.describe_change("x", 20.0, 15.0)
    assert "rose" in self_supervised.describe_change("x", 15.0, 20.0)
    table = self_supervised.forgetting_table({"a": 10.0}, {"a": 12.0})
    assert table.loc[0, "change %"] == 20.0


def test_with_lora_trains_only_the_adapters(tiny):
    from ftkit.params import count_parameters, lora_parameter_count

    import copy
    model = self_supervised.with_lora(copy.deepcopy(tiny), r=2, target_modules=("q_proj", "v_proj"))
    # q_proj: 16 -> 16; v_proj: 16 -> 8 (one key/value head of 8), in each of 2 layers
    expected = 2 * (lora_parameter_count(16, 16, 2) + lora_parameter_count(8, 16, 2))
    assert count_parameters(model).trainable == expected
