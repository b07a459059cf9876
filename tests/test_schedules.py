"""ULMFiT's schedules in ftkit.schedules: slanted triangular rates, discriminative rates, gradual unfreezing."""
import math

import pytest
import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from ftkit.schedules import (discriminative_param_groups, gradual_unfreezing, layer_groups, slanted_triangular,
                             slanted_triangular_scheduler, unfreezing_stages)


def tiny_classifier(layers=3):
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=50, dim=8, hidden_dim=16, n_layers=layers, n_heads=2,
                              max_position_embeddings=16, num_labels=2)
    return DistilBertForSequenceClassification(config)


@pytest.mark.parametrize("total", [100, 1000, 37])
def test_slanted_triangular_peaks_at_cut_frac_and_ends_at_max_over_ratio(total):
    rates = [slanted_triangular(t, total, max_lr=0.01) for t in range(total)]
    cut = math.floor(total * 0.1)
    assert rates.index(max(rates)) == cut
    assert max(rates) == pytest.approx(0.01)
    assert rates[0] == pytest.approx(0.01 / 32)
    assert rates[-1] == pytest.approx(0.01 / 32)
    rising, falling = rates[: cut + 1], rates[cut:]
    assert all(a < b for a, b in zip(rising, rising[1:]))
    assert all(a > b for a, b in zip(falling, falling[1:]))


def test_slanted_triangular_uses_its_arguments():
    rates = [slanted_triangular(t, 200, max_lr=1.0, cut_frac=0.25, ratio=10) for t in range(200)]
    assert rates.index(1.0) == 50 and rates[-1] == pytest.approx(0.1)
    with pytest.raises(ValueError):
        slanted_triangular(200, 200, 1.0)


def test_the_scheduler_gives_each_group_the_same_shape_at_its_own_rate():
    model = tiny_classifier()
    optimizer = torch.optim.SGD(discriminative_param_groups(model, base_lr=0.1), lr=0.1)
    scheduler = slanted_triangular_scheduler(optimizer, total_steps=50)
    seen = []
    for _ in range(50):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    for step, rates in enumerate(seen):
        for group, rate in zip(optimizer.param_groups, rates):
            assert rate == pytest.approx(slanted_triangular(step, 50, group["initial_lr"]))


def test_layer_groups_cover_every_parameter_once_bottom_to_top():
    model = tiny_classifier(layers=3)
    groups = layer_groups(model)
    assert [name for name, _ in groups] == ["embeddings", "block 0", "block 1", "block 2", "head"]
    ids = [id(p) for _, params in groups for p in params]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    head = {id(p) for p in groups[-1][1]}
    assert head == {id(p) for m in (model.pre_classifier, model.classifier) for p in m.parameters()}


def test_discriminative_rates_divide_by_the_factor_going_down():
    model = tiny_classifier(layers=3)
    groups = discriminative_param_groups(model, base_lr=1e-3, factor=2.6)
    assert [g["name"] for g in groups] == ["embeddings", "block 0", "block 1", "block 2", "head"]
    assert groups[-1]["lr"] == pytest.approx(1e-3)
    assert groups[-2]["lr"] == pytest.approx(1e-3 / 2.6)
    assert groups[0]["lr"] == pytest.approx(1e-3 / 2.6 ** 4)
    for lower, upper in zip(groups, groups[1:]):
        assert upper["lr"] / lower["lr"] == pytest.approx(2.6)


def test_gradual_unfreezing_adds_one_group_from_the_top_each_stage():
    model = tiny_classifier(layers=3)
    groups = dict(layer_groups(model))
    expected = ["head", "block 2", "block 1", "block 0", "embeddings"]
    for stage in range(5):
        names = gradual_unfreezing(model, stage)
        assert names == expected[: stage + 1]
        for name, params in groups.items():
            assert all(p.requires_grad == (name in names) for p in params), (stage, name)


def test_unfreezing_stages_share_the_steps():
    assert unfreezing_stages(100, 8) == [13, 13, 13, 13, 12, 12, 12, 12]
    assert sum(unfreezing_stages(37, 5)) == 37
    with pytest.raises(ValueError):
        unfreezing_stages(3, 8)


def test_unfreezing_stages_of_one_epoch_each_leave_the_rest_to_the_last():
    assert unfreezing_stages(100, 4, stage_steps=20) == [20, 20, 20, 40]
    with pytest.raises(ValueError, match="more than 60 steps"):
        unfreezing_stages(60, 4, stage_steps=20)
