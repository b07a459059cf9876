import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ftkit import soft_prompts
from ftkit.params import count_parameters


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


class FakeTokenizer:
    """Maps each word to a fixed id; enough for the init and verbalizer helpers."""

    def __init__(self):
        self.vocab = {" negative": 5, " positive": 9, "a": 1, "b": 2, "c": 3, " two words": None}

    def __call__(self, text, add_special_tokens=True):
        if text == " two words":
            return {"input_ids": [7, 8]}
        if text in self.vocab:
            return {"input_ids": [self.vocab[text]]}
        return {"input_ids": [self.vocab[w] for w in text.split()]}

    def decode(self, ids):
        return f"<{ids[0]}>"


def test_soft_prompt_has_peft_prompt_tuning_trainable_count():
    from peft import PromptTuningConfig, get_peft_model

    n = 7
    ours = soft_prompts.SoftPrompt(tiny_llama(), n)
    theirs = get_peft_model(tiny_llama(), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n))
    assert count_parameters(ours).trainable == count_parameters(theirs).trainable == n * 32
    assert count_parameters(ours).total == count_parameters(theirs).total
    assert all(not p.requires_grad for p in ours.model.parameters())  # the base is frozen


def test_soft_prompt_computes_what_peft_computes_with_the_same_vectors():
    from peft import PromptTuningConfig, get_peft_model

    n = 5
    ours = soft_prompts.SoftPrompt(tiny_llama(), n)
    theirs = get_peft_model(tiny_llama(), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n))
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(ours.prompt)
    ids = torch.randint(0, 64, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    got = ours(ids, mask).logits
    want = theirs(input_ids=ids, attention_mask=mask).logits
    assert got.shape == (2, n + 6, 64)
    torch.testing.assert_close(got, want)
    # The gradient reaches the prompt and only the prompt.
    got[:, -1].sum().backward()
    assert ours.prompt.grad is not None and ours.prompt.grad.abs().sum() > 0


def test_text_init_repeats_and_cuts_like_peft():
    tok = FakeTokenizer()
    assert soft_prompts.text_init_token_ids(tok, "a b c", 7) == [1, 2, 3, 1, 2, 3, 1]
    assert soft_prompts.text_init_token_ids(tok, "a b c", 2) == [1, 2]
    model = tiny_llama()
    soft = soft_prompts.SoftPrompt(model, 4, init_text="a b", tokenizer=tok)
    torch.testing.assert_close(soft.prompt.data, model.get_input_embeddings().weight[[1, 2, 1, 2]])


def test_verbalizer_scores_the_last_real_token_of_each_row():
    vocab = 10
    logits = torch.zeros(2, 4, vocab)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    logits[0, 3, 9], logits[0, 3, 5] = 2.0, 1.0     # row 0 ends at position 3: positive
    logits[1, 1, 5], logits[1, 1, 9] = 3.0, 0.5     # row 1 ends at position 1: negative
    logits[1, 3, 9] = 10.0                          # a padding position: must be ignored
    scores = soft_prompts.verbalizer_logits(logits, mask, [5, 9])
    assert scores.tolist() == [[1.0, 2.0], [3.0, 0.5]]
    # Extra positions in front (a soft prompt) do not move the answer.
    padded = torch.cat([torch.full((2, 3, vocab), 99.0), logits], dim=1)
    assert soft_prompts.verbalizer_logits(padded, mask, [5, 9]).tolist() == scores.tolist()


def test_verbalizer_words_must_be_single_tokens():
    tok = FakeTokenizer()
    assert soft_prompts.verbalizer_token_ids(tok) == [5, 9]
    with pytest.raises(ValueError, match="one token"):
        soft_prompts.verbalizer_token_ids(tok, [" negative", " two words"])


def test_nearest_tokens_finds_a_token_from_its_own_embedding():
    emb = torch.randn(20, 8)
    table = soft_prompts.nearest_tokens(emb[[3, 11]] * 2.5, emb, FakeTokenizer(), k=2)
    assert table["token_1"].tolist() == ["<3>", "<11>"]
    assert table["cosine_1"].tolist() == [1.0, 1.0]


def test_serve_switches_prompts_per_row():
    model = tiny_llama()
    soft = soft_prompts.SoftPrompt(model, 3)
    tok = FakeTokenizer()

    class BatchTokenizer(FakeTokenizer):
        def __call__(self, text, add_special_tokens=True, padding=False, return_tensors=None):
            if isinstance(text, str):
                return super().__call__(text)
            ids = [[self.vocab[w] for w in t.split()] for t in text]
            return {"input_ids": torch.tensor(ids), "attention_mask": torch.ones(len(ids), len(ids[0]), dtype=torch.long)}

    tok = BatchTokenizer()
    a = soft_prompts.PromptTask(torch.randn(3, 32), "{text}", [" negative", " positive"], tok)
    b = soft_prompts.PromptTask(torch.randn(3, 32), "{text}", [" positive", " negative"], tok)
    mixed = soft_prompts.serve(soft, tok, {"a": a, "b": b}, [("a", "a b"), ("b", "a b")])
    alone_a = soft_prompts.serve(soft, tok, {"a": a}, [("a", "a b")])
    alone_b = soft_prompts.serve(soft, tok, {"b": b}, [("b", "a b")])
    assert mixed == alone_a + alone_b


def test_prefix_from_text_makes_peft_prefix_tuning_compute_the_text_in_front():
    from peft import PrefixTuningConfig, get_peft_model

    tokenizer, text, n = FakeTokenizer(), "a b c", 5  # "a b c" repeated and cut: ids 1 2 3 1 2
    prefixed = get_peft_model(tiny_llama(), PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n))
    base = tiny_llama()
    start = soft_prompts.prefix_from_text(base, tokenizer, text, n)
    assert start.shape == prefixed.prompt_encoder["default"].embedding.weight.shape
    with torch.no_grad():
        prefixed.prompt_encoder["default"].embedding.weight.copy_(start)
        ids = torch.randint(0, 64, (2, 6))
        mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
        got = prefixed(input_ids=ids, attention_mask=mask).logits
        text_ids = torch.tensor([[1, 2, 3, 1, 2]] * 2)
        text_mask = torch.ones(2, n, dtype=torch.long)
        want = base(input_ids=torch.cat([text_ids, ids], 1), attention_mask=torch.cat([text_mask, mask], 1)).logits[:, n:]
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1, :4], want[1, :4])  # the padded row agrees on its real tokens


def test_fit_prefix_encoder_makes_the_mlp_output_the_text_prefix():
    from peft import PrefixTuningConfig, get_peft_model

    n = 5
    target = soft_prompts.prefix_from_text(tiny_llama(), FakeTokenizer(), "a b c", n)
    torch.manual_seed(0)
    prefixed = get_peft_model(tiny_llama(), PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n,
                                                               prefix_projection=True, encoder_hidden_size=16))
    encoder = prefixed.prompt_encoder["default"]
    before = ((encoder(torch.arange(n)) - target).norm() / target.norm()).item()
    after = soft_prompts.fit_prefix_encoder(encoder, target, steps=1000)
    assert before > 0.5 and after < 0.01


def test_a_loader_by_length_keeps_every_row_once_and_pads_little():
    from datasets import Dataset
    from test_ppo import tiny_tokenizer

    texts = ["good film is a great plot", "bad", "the film is good", "a", "bad plot is bad", "great"]
    rows = Dataset.from_dict({"text": texts, "label": [1, 0, 1, 0, 0, 1]})
    tok = tiny_tokenizer()
    loader = soft_prompts.verbalizer_loader(rows, tok, "review: {text}", batch_size=2, by_length=True)
    batches = list(loader)
    widths = [b["input_ids"].shape[1] for b in batches]
    assert widths == sorted(widths) and sum(len(b["labels"]) for b in batches) == len(texts)
    padded = sum(int((b["attention_mask"] == 0).sum()) for b in batches)
    plain = soft_prompts.verbalizer_loader(rows, tok, "review: {text}", batch_size=2)
    assert padded < sum(int((b["attention_mask"] == 0).sum()) for b in plain)
    assert sorted(label for b in batches for label in b["labels"].tolist()) == sorted(rows["label"])
    with pytest.raises(ValueError, match="cannot be combined with shuffle"):
        soft_prompts.verbalizer_loader(rows, tok, "review: {text}", batch_size=2, by_length=True, shuffle=True)
