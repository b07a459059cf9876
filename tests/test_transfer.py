"""ftkit.transfer: freezing by depth, cached-feature heads, importance scores, gradient masks."""
import pytest
import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification

from ftkit.transfer import (apply_gradient_masks, distilbert_head, encoder_features, fine_tune, freeze_all_but_top,
                            importance_scores, mask_share_by_group, top_fraction_masks)
from ftkit.params import count_parameters


def tiny_classifier(layers=3, seed=0):
    torch.manual_seed(seed)
    config = DistilBertConfig(vocab_size=50, dim=8, hidden_dim=16, n_layers=layers, n_heads=2,
                              max_position_embeddings=16, num_labels=2)
    return DistilBertForSequenceClassification(config)


def batches(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(1, 50, (4, 6), generator=g)
        mask = torch.ones_like(ids)
        mask[0, 4:] = 0
        out.append({"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 2, (4,), generator=g)})
    return out


def block_size(model):
    return sum(p.numel() for p in model.distilbert.transformer.layer[0].parameters())


def test_freezing_by_depth_counts_head_plus_k_blocks():
    model = tiny_classifier(layers=3)
    head = sum(p.numel() for m in (model.pre_classifier, model.classifier) for p in m.parameters())
    for k in range(4):
        assert freeze_all_but_top(model, k) == head + k * block_size(model)
    assert freeze_all_but_top(model, "all") == sum(p.numel() for p in model.parameters())
    freeze_all_but_top(model, 1)
    assert all(p.requires_grad for p in model.distilbert.transformer.layer[2].parameters())
    assert not any(p.requires_grad for p in model.distilbert.transformer.layer[1].parameters())
    with pytest.raises(ValueError):
        freeze_all_but_top(model, -1)


def test_the_head_on_cached_features_gives_the_models_logits():
    model = tiny_classifier().eval()
    data = batches(2)
    features = encoder_features(model, data)
    ours = distilbert_head(model, torch.from_numpy(features["cls"]))
    with torch.no_grad():
        theirs = torch.cat([model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits for b in data])
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert features["mean"].shape == (8, 8) and features["labels"].shape == (8,)


def test_importance_scores_are_abs_grad_and_abs_grad_times_weight():
    model = tiny_classifier()
    data = batches(1)
    scores = importance_scores(model, data, n_batches=1)
    model.zero_grad()
    model.eval()
    model(**data[0]).loss.backward()
    name = "distilbert.transformer.layer.1.ffn.lin1.weight"
    p = dict(model.named_parameters())[name]
    assert torch.allclose(scores["grad"][name], p.grad.abs())
    assert torch.allclose(scores["grad_x_weight"][name], (p.grad * p).abs())
    assert set(scores["grad"]) == {n for n, _ in model.named_parameters() if n.startswith("distilbert.")}


def test_top_fraction_masks_keep_exactly_the_highest_entries():
    scores = {"a": torch.tensor([[5.0, 1.0], [3.0, 3.0]]), "b": torch.tensor([3.0, 0.5, 4.0])}
    masks = top_fraction_masks(scores, 3)
    assert sum(int(m.sum()) for m in masks.values()) == 3  # a tie at 3.0 is broken, not kept twice
    assert masks["a"][0, 0] and masks["b"][2] and not masks["b"][1]
    with pytest.raises(ValueError):
        top_fraction_masks(scores, 0)


def test_masked_entries_do_not_change_and_kept_ones_do():
    model = tiny_classifier()
    data = batches(4)
    scores = importance_scores(model, data, n_batches=2)["grad_x_weight"]
    n_keep = 100
    masks = top_fraction_masks(scores, n_keep)
    model.requires_grad_(False)
    for m in (model.pre_classifier, model.classifier):
        m.requires_grad_(True)
    handles = apply_gradient_masks(model, masks)
    params = dict(model.named_parameters())
    before = {n: params[n].detach().clone() for n in masks}
    head_before = model.classifier.weight.detach().clone()
    fine_tune(model, data, steps=6, lr=1e-2)
    changed = 0
    for name, mask in masks.items():
        after = params[name].detach()
        assert torch.equal(after[~mask], before[name][~mask]), name
        changed += int((after[mask] != before[name][mask]).sum())
    assert changed > n_keep // 2
    assert not torch.equal(model.classifier.weight, head_before)
    shares = mask_share_by_group(model, masks)
    assert shares["head"] == 0 and sum(shares.values()) > 0
    for handle in handles:
        handle.remove()


def test_gradual_fine_tuning_trains_every_group_by_the_end():
    model = tiny_classifier(layers=3)
    data = batches(4)
    embeddings_before = model.distilbert.embeddings.word_embeddings.weight.detach().clone()
    result = fine_tune(model, data, steps=10, lr=1e-2, slanted=True, discriminative=2.6, gradual=True,
                       evaluate=lambda m: {"accuracy": 0.5})
    assert result.steps == 10 and [s for s, _ in result.losses] == list(range(1, 11))
    assert result.evaluations == [{"step": 10, "accuracy": 0.5}]
    assert count_parameters(model).trainable == sum(p.numel() for p in model.parameters())
    assert not torch.equal(model.distilbert.embeddings.word_embeddings.weight, embeddings_before)


def test_gradual_fine_tuning_with_a_stage_length_gives_the_last_stage_the_rest():
    model = tiny_classifier(layers=3)  # 5 groups: embeddings, 3 blocks, head
    embeddings_before = model.distilbert.embeddings.word_embeddings.weight.detach().clone()
    result = fine_tune(model, batches(4), steps=9, lr=1e-2, gradual=True, stage_steps=2)
    assert result.steps == 9  # 4 stages of 2, then 1 step with every group
    assert not torch.equal(model.distilbert.embeddings.word_embeddings.weight, embeddings_before)
    with pytest.raises(ValueError, match="more than 8 steps"):
        fine_tune(tiny_classifier(layers=3), batches(4), steps=8, lr=1e-2, gradual=True, stage_steps=2)
