"""LoRA from scratch (`ftkit.lora`) against peft on a tiny random DistilBERT: counts, outputs, merging."""
import copy

import pytest
import torch

from ftkit import lora
from ftkit.params import count_parameters

HEAD = ["pre_classifier", "classifier"]


def tiny_distilbert():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                              max_position_embeddings=16, num_labels=2)
    return DistilBertForSequenceClassification(config).eval()


def inputs():
    torch.manual_seed(1)
    return {"input_ids": torch.randint(0, 100, (3, 10)), "attention_mask": torch.ones(3, 10, dtype=torch.long)}


def peft_and_scratch(targets, r=4, alpha=8):
    from peft import LoraConfig, get_peft_model

    base = tiny_distilbert()
    scratch = lora.add_lora(copy.deepcopy(base), targets, r=r, alpha=alpha, trainable_modules=HEAD)
    peft_model = get_peft_model(copy.deepcopy(base), LoraConfig(r=r, lora_alpha=alpha, target_modules=targets,
                                                                 task_type="SEQ_CLS", modules_to_save=list(HEAD)))  # a copy: peft appends to the list it is given
    # Give peft's adapters non-zero B (as after training), then copy peft's A and B into ours.
    torch.manual_seed(2)
    layers = lora.lora_layers(scratch)
    for name, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            torch.nn.init.normal_(module.lora_B["default"].weight, std=1.0)
            ours = layers[name.removeprefix("base_model.model.")]
            with torch.no_grad():
                ours.lora_A.copy_(module.lora_A["default"].weight)
                ours.lora_B.copy_(module.lora_B["default"].weight)
    return base, scratch.eval(), peft_model.eval()


@pytest.mark.parametrize("targets", [["q_lin"], ["q_lin", "v_lin"], ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"]])
def test_scratch_and_peft_train_the_same_number_of_parameters(targets):
    base, scratch, peft_model = peft_and_scratch(targets)
    ours, theirs = count_parameters(scratch), count_parameters(peft_model)
    assert ours.trainable == theirs.trainable
    assert ours.total == theirs.total
    assert ours.trainable == lora.lora_trainable_count(base, targets, r=4, trainable_modules=HEAD)


def test_scratch_and_peft_compute_the_same_outputs_before_and_after_merging():
    base, scratch, peft_model = peft_and_scratch(["q_lin", "v_lin", "lin1"])
    x = inputs()
    with torch.no_grad():
        ours, theirs, plain = scratch(**x).logits, peft_model(**x).logits, base(**x).logits
        assert (ours - plain).abs().max() > 1e-3  # the adapters do change the model
        assert torch.allclose(ours, theirs, atol=1e-6)
        merged_ours = lora.merge_lora(scratch)(**x).logits
        merged_theirs = peft_model.merge_and_unload()(**x).logits
    assert torch.allclose(merged_ours, ours, atol=1e-6)
    assert torch.allclose(merged_theirs, theirs, atol=1e-6)
    assert torch.allclose(merged_ours, merged_theirs, atol=1e-6)
    assert not lora.lora_layers(scratch)
    assert all(type(m) is torch.nn.Linear for n, m in scratch.named_modules() if n.endswith(("q_lin", "v_lin")))


def test_zero_initialised_b_starts_at_the_base_model():
    base = tiny_distilbert()
    adapted = lora.add_lora(copy.deepcopy(base), ["q_lin", "v_lin"], r=2, alpha=4)
    x = inputs()
    with torch.no_grad():
        assert torch.equal(adapted.eval()(**x).logits, base(**x).logits)
    layer = next(iter(lora.lora_layers(adapted).values()))
    assert layer.lora_B.abs().sum() == 0 and layer.lora_A.abs().sum() > 0
    assert layer.scale == 2.0
    assert count_parameters(adapted).trainable == 2 * 2 * 2 * (32 + 32)  # 2 layers x 2 targets x r(d+k)


def test_a_wrong_target_lists_the_module_names_that_exist():
    with pytest.raises(ValueError, match=r"\['query'\].*k_lin, lin1, lin2, out_lin, pre_classifier, q_lin, v_lin"):
        lora.add_lora(tiny_distilbert(), ["q_lin", "query"], r=2, alpha=4)


def test_canonical_distilbert_figure():
    """peft prints 628,994 trainable of 67,584,004 for distilbert-base-uncased, r=4 on q_lin, 2-class head."""
    from peft import LoraConfig, get_peft_model

    from course.models import meta_model

    model = get_peft_model(meta_model("distilbert-base-uncased", num_labels=2),
                           LoraConfig(r=4, lora_alpha=32, target_modules=["q_lin"], task_type="SEQ_CLS"))
    trainable, total = model.get_nb_trainable_parameters()
    assert (trainable, total) == (628_994, 67_584_004)
    assert count_parameters(model).trainable == 36_864 + 592_130


def test_copy_from_peft_reproduces_peft_outputs():
    from peft import LoraConfig, get_peft_model

    base = tiny_distilbert()
    peft_model = get_peft_model(copy.deepcopy(base), LoraConfig(r=2, lora_alpha=4, target_modules=["q_lin", "lin2"],
                                                                 task_type="SEQ_CLS", modules_to_save=list(HEAD)))  # a copy: peft appends to the list it is given
    torch.manual_seed(3)
    for name, param in peft_model.named_parameters():
        if param.requires_grad:
            torch.nn.init.normal_(param, std=0.5)
    scratch = lora.add_lora(tiny_distilbert(), ["q_lin", "lin2"], r=2, alpha=4, trainable_modules=HEAD)
    lora.copy_from_peft(peft_model, scratch)
    x = inputs()
    with torch.no_grad():
        assert torch.allclose(scratch.eval()(**x).logits, peft_model.eval()(**x).logits, atol=1e-6)
        assert not torch.allclose(scratch(**x).logits, base(**x).logits, atol=1e-3)


@pytest.mark.parametrize("rank, message", [(0, "at least 1"), (2.5, "whole number"), (True, "whole number"),
                                           (5, "above min\\(d_out, d_in\\) = 4")])
def test_ranks_that_cannot_work_are_refused_with_the_fix(rank, message):
    with pytest.raises(ValueError, match=message):
        lora.LoRALinear(torch.nn.Linear(4, 6), r=rank, alpha=8)
    lora.LoRALinear(torch.nn.Linear(4, 6), r=4, alpha=8)  # full rank is allowed


def test_trainable_modules_that_match_nothing_are_an_error_not_a_frozen_head():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"trainable_modules \['classifier'\] match no module"):
        lora.add_lora(model, ["0"], r=2, trainable_modules=["classifier"])
