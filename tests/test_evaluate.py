import math

import pytest
import torch
from torch import nn

from ftkit import evaluate


class FixedClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([[1.0, -1.0]]))

    def forward(self, x):
        return type("Out", (), {"logits": x @ self.weight})()


def test_accuracy_counts_argmax_matches():
    loader = [{"x": torch.tensor([[1.0], [-1.0], [2.0]]), "labels": torch.tensor([0, 1, 1])}]
    assert evaluate.classification_accuracy(FixedClassifier(), loader) == pytest.approx(2 / 3)


def test_correct_lists_each_example_in_the_loaders_order():
    loader = [{"x": torch.tensor([[1.0], [-1.0]]), "labels": torch.tensor([0, 0])},
              {"x": torch.tensor([[2.0]]), "labels": torch.tensor([1])}]
    assert evaluate.classification_correct(FixedClassifier(), loader) == [1, 0, 0]


class UniformLM(nn.Module):
    """Predicts every token of a vocabulary of 10 with equal probability: perplexity must be 10."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(10))

    def forward(self, input_ids, labels):
        logits = self.bias.expand(*input_ids.shape, 10)
        loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 10), labels[:, 1:].reshape(-1))
        return type("Out", (), {"loss": loss})()


class BigramLM(nn.Module):
    """Each token's next-token logits come from a fixed table, so blocks differ in loss."""

    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(10, 10, generator=torch.Generator().manual_seed(0)))

    def forward(self, input_ids, labels=None, attention_mask=None):
        logits = self.table[input_ids]
        out = type("Out", (), {"logits": logits})()
        if labels is not None:
            out.loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 10), labels[:, 1:].reshape(-1))
        return out


def test_block_losses_are_per_block_and_average_to_the_log_perplexity():
    import math

    ids = torch.randint(0, 10, (6, 8), generator=torch.Generator().manual_seed(1))
    loader = [{"input_ids": ids[:4], "labels": ids[:4]}, {"input_ids": ids[4:], "labels": ids[4:]}]
    losses = evaluate.block_losses(BigramLM(), loader)
    assert len(losses) == 6 and len(set(losses)) > 1
    assert sum(losses) / 6 == pytest.approx(math.log(evaluate.perplexity(BigramLM(), loader)))


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    ids = torch.randint(0, 10, (6, 8))
    loader = [{"input_ids": ids[:4], "labels": ids[:4]}, {"input_ids": ids[4:], "labels": ids[4:]}]
    assert evaluate.perplexity(UniformLM(), loader) == pytest.approx(10.0)


def test_rouge_agrees_with_hand_counts():
    scores = evaluate.rouge(["the cat sat"], ["the cat sat down"])
    assert scores["rouge1"] == pytest.approx(2 * 1.0 * 0.75 / 1.75)  # P = 3/3, R = 3/4
    assert scores["rouge2"] == pytest.approx(2 * 1.0 * (2 / 3) / (1 + 2 / 3))
    with pytest.raises(ValueError, match="pair up"):
        evaluate.rouge(["a"], [])


def test_rouge_with_several_references_takes_each_predictions_best_match():
    one = evaluate.rouge(["the cat sat"], ["the cat sat down"])
    assert evaluate.rouge(["the cat sat"], [["the cat sat down"]]) == one
    assert evaluate.rouge(["the cat sat"], [["a dog ran", "the cat sat down"]]) == one
    assert evaluate.rouge(["the cat sat"], [["the cat sat down", "the cat sat"]])["rouge1"] == pytest.approx(1.0)


def test_per_example_rouge_is_what_the_mean_averages():
    each = evaluate.rouge_per_example(["the cat sat", "a dog"], ["the cat sat down", ["a dog ran", "a dog"]])
    assert each[1]["rouge1"] == pytest.approx(1.0)  # its best reference matches exactly
    assert each[0] == pytest.approx(evaluate.rouge(["the cat sat"], ["the cat sat down"]))
    mean = evaluate.rouge(["the cat sat", "a dog"], ["the cat sat down", ["a dog ran", "a dog"]])
    assert mean["rougeL"] == pytest.approx((each[0]["rougeL"] + each[1]["rougeL"]) / 2)


def test_paired_difference_uses_the_per_example_differences():
    from ftkit.evaluate import paired_difference

    gain, se = paired_difference([1, 1, 0, 1], [0, 1, 0, 0])  # differences 1, 0, 0, 1
    assert gain == pytest.approx(0.5)
    assert se == pytest.approx((1 / 3) ** 0.5 / 2)  # stdev sqrt(1/3) over sqrt(4)
    # A constant shift has no spread once paired, however much the examples differ from each other.
    assert paired_difference([10.1, 0.1, 5.1], [10.0, 0.0, 5.0]) == (pytest.approx(0.1), pytest.approx(0.0, abs=1e-12))
    with pytest.raises(ValueError, match="same examples"):
        paired_difference([1, 0], [1, 0, 1])
