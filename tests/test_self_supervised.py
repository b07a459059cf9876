"""course.self_supervised: notebook 01's blocks, perplexity tables and sentences, its LoRA wrapper, widget and exercise check."""
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


def test_the_perplexity_widget_prints_exp_of_the_loss(capsys):
    self_supervised.show_perplexity(2.0, sentence_loss=0.0)
    line = capsys.readouterr().out
    assert "perplexity exp(2.00) = 7.39" in line and "p = 1/7.39 = 0.1353" in line and "perplexity 1.00." in line


def test_next_token_loss_without_the_shift_is_caught():
    import torch.nn.functional as F

    def next_token_loss(logits, input_ids):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), input_ids.reshape(-1))

    verdict = self_supervised.check_next_token_loss(next_token_loss)
    assert not verdict.correct and "should be" in verdict.message and "but is" in verdict.message


def test_next_token_loss_shifted_the_wrong_way_is_caught():
    import torch.nn.functional as F

    def next_token_loss(logits, input_ids):
        return F.cross_entropy(logits[:, 1:].reshape(-1, logits.shape[-1]), input_ids[:, :-1].reshape(-1))

    verdict = self_supervised.check_next_token_loss(next_token_loss)
    assert not verdict.correct and "should be" in verdict.message


def test_next_token_loss_summed_instead_of_averaged_is_caught():
    import torch.nn.functional as F

    def next_token_loss(logits, input_ids):
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), input_ids[:, 1:].reshape(-1),
                               reduction="sum")

    assert not self_supervised.check_next_token_loss(next_token_loss).correct


def test_held_out_text_loses_every_paragraph_that_shares_a_long_run_with_training_text():
    from course.self_supervised import shared_span_share, without_shared_spans

    train = ["the quick brown fox jumps over the lazy dog near the river bank today"]
    test = ["something new entirely here\n\nthe quick brown fox jumps over the lazy dog near the river bank\n\nalso new"]
    assert shared_span_share(train, test, n=12) == 13 / 19  # the middle paragraph: two overlapping 12-word runs
    cleaned = without_shared_spans(test, train, n=12)
    assert cleaned == ["something new entirely here\n\nalso new"]
    assert shared_span_share(train, cleaned, n=12) == 0
    assert shared_span_share(train, ["a b c"], n=12) == 0  # shorter than a span


def test_a_loss_change_is_read_against_its_paired_standard_error():
    from course.self_supervised import describe_loss_change

    before = [2.0, 2.5, 3.0, 2.2]
    assert "a rise beyond two standard errors" in describe_loss_change("docs", before, [b + 0.5 for b in before])
    assert describe_loss_change("docs", before, [b - 0.5 for b in before]).endswith("a fall beyond two standard errors")
    noisy = describe_loss_change("docs", before, [2.1, 2.4, 3.1, 2.1])
    assert noisy.startswith("docs: loss +0.000 ± 0.058 nats per token over n=4") and "no change this many" in noisy


def test_a_perplexity_record_keeps_its_block_losses_and_their_paired_change():
    import pytest
    from course.self_supervised import paired_loss_fields

    fields = paired_loss_fields([2.0, 2.5, 3.0], [2.5, 2.5, 3.5])
    assert fields["scores"] == [2.0, 2.5, 3.0] and fields["scores_unit"] == "nats per token"
    assert fields["loss_change"] == pytest.approx(-1 / 3)
    assert fields["loss_change_se"] == pytest.approx(1 / 6)  # differences -0.5, 0, -0.5: sd sqrt(1/12), n=3
