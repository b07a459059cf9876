import torch
from transformers import DistilBertConfig, DistilBertForSequenceClassification, LlamaConfig, LlamaForCausalLM

from ftkit import adapters
from ftkit.params import count_parameters


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def test_adapter_is_identity_at_initialisation_and_then_learns():
    adapter = adapters.BottleneckAdapter(16, 4)
    h = torch.randn(3, 5, 16)
    assert torch.equal(adapter(h), h)
    with torch.no_grad():
        adapter.up.weight.normal_()
    assert not torch.allclose(adapter(h), h)


def test_adapters_leave_llama_outputs_unchanged_and_train_alone():
    model = tiny_llama()
    ids = torch.randint(0, 64, (2, 7))
    before = model(ids).logits
    names = adapters.add_adapters(model, bottleneck=4)
    assert len(names) == 2 * 2  # attention and feed-forward of each of the 2 blocks
    assert all(name.endswith(("self_attn", "mlp")) for name in names)
    torch.testing.assert_close(model(ids).logits, before, rtol=0, atol=0)
    count = count_parameters(model)
    assert count.trainable == 4 * adapters.adapter_parameter_count(32, 4) == 4 * (2 * 32 * 4 + 4 + 32)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".adapter." in n for n in trainable)
    # A gradient step on the adapters changes the output; the frozen weights stay put.
    frozen = model.model.layers[0].mlp.sublayer.up_proj.weight.clone()
    model(ids).logits.sum().backward()
    assert model.model.layers[0].mlp.adapter.up.weight.grad.abs().sum() > 0
    assert model.model.layers[0].mlp.sublayer.up_proj.weight.grad is None
    assert torch.equal(model.model.layers[0].mlp.sublayer.up_proj.weight, frozen)


def test_adapters_on_distilbert_keep_the_head_trainable():
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=50, dim=32, hidden_dim=64, n_layers=2, n_heads=4, num_labels=2)).eval()
    ids = torch.randint(0, 50, (2, 6))
    before = model(ids).logits
    adapters.add_adapters(model, bottleneck=8, train_also=("classifier",))
    torch.testing.assert_close(model(ids).logits, before, rtol=0, atol=0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"classifier.weight", "pre_classifier.weight"} <= trainable
    assert sum(".adapter." in n for n in trainable) == 2 * 2 * 4  # 4 adapters x (down, up) x (weight, bias)


def test_adapter_state_holds_only_adapter_weights():
    model = tiny_llama()
    adapters.add_adapters(model, bottleneck=4)
    state = adapters.adapter_state(model)
    assert len(state) == 4 * 4 and all(".adapter." in name for name in state)
