"""ftkit.precision: the device and dtype policy, and the helpers that must follow their model's device and dtype.

A CPU-only machine cannot see a helper that builds its inputs on the CPU whatever the model: everything is on
the CPU. So the device checks put the model on the meta device (shapes without data) and check, at the model's
door, that every input arrived there; a meta model cannot compute further, so the check then stops the helper.
The dtype checks run the helpers end to end with a float64 model, where a helper that makes float32 tensors
for the model, or float32 weights beside it, is caught. On a machine with a GPU they run there too.
"""
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from transformers import (DistilBertConfig, DistilBertForSequenceClassification, LlamaConfig, LlamaForCausalLM,
                          LlamaForSequenceClassification)

from ftkit import adapters, evaluate, instructions, lora, ppo, quant, soft_prompts, train, transfer
from ftkit.precision import Precision, master_dtype, model_device, model_dtype, precision_for, to_device
from ftkit.reward_model import pooled_positions, score_texts
from course import lora_distilbert, qlora_llama, rlhf, supervised_instruction

# --- the policy ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("capability, dtype, scales_loss", [((7, 5), torch.float16, True),  # T4
                                                           ((8, 0), torch.bfloat16, False),  # A100
                                                           ((9, 0), torch.bfloat16, False)])  # H100
def test_a_gpu_computes_in_bf16_from_ampere_on_and_in_fp16_with_loss_scaling_before(monkeypatch, capability, dtype,
                                                                                   scales_loss):
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or capability)
    policy = precision_for("cuda:0")
    assert (policy.compute_dtype, policy.scales_loss) == (dtype, scales_loss)
    assert asked == [torch.device("cuda:0")]  # the capability of the GPU the model is on
    assert policy.dtype_name == {torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]


def test_a_cpu_computes_in_fp32_with_no_autocast_and_no_loss_scaling():
    policy = precision_for("cpu")
    assert (policy.compute_dtype, policy.scales_loss, policy.dtype_name) == (torch.float32, False, "fp32")
    with policy.autocast():
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert not policy.grad_scaler().is_enabled()


def test_trl_gets_the_same_switches(monkeypatch):
    assert precision_for("cpu").trl_kwargs() == {"bf16": False, "fp16": False, "use_cpu": True}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    assert precision_for("cuda").trl_kwargs() == {"bf16": True, "fp16": False, "use_cpu": False}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    assert precision_for("cuda").trl_kwargs() == {"bf16": False, "fp16": True, "use_cpu": False}


def test_a_policy_outside_the_table_is_refused():
    with pytest.raises(ValueError, match="compute_dtype must be"):
        Precision("cuda", torch.float64)
    with pytest.raises(ValueError, match="compute_dtype must be"):
        Precision("cpu", torch.int8)
    with pytest.raises(ValueError, match="fp16 compute on a CPU"):
        Precision("cpu", torch.float16)
    assert Precision("cpu", torch.bfloat16).dtype_name == "bf16"  # allowed, if slow


def test_to_device_moves_tensors_and_leaves_everything_else_alone():
    texts = ["a review"]
    batch = {"input_ids": torch.tensor([[1, 2]]), "texts": texts, "n": 3}
    moved = to_device(batch, "meta")
    assert moved["input_ids"].device.type == "meta" and moved["input_ids"].shape == (1, 2)
    assert moved["texts"] is texts and moved["n"] == 3
    assert batch["input_ids"].device.type == "cpu"  # a new dict: the caller's batch is not changed


def test_a_module_without_parameters_has_no_device_or_dtype():
    with pytest.raises(ValueError, match="ReLU has no parameters"):
        model_device(nn.ReLU())
    with pytest.raises(ValueError, match="ReLU has no floating-point parameters"):
        model_dtype(nn.ReLU())


def test_model_dtype_skips_packed_4bit_weights_and_master_weights_are_at_least_fp32():
    packed_first = nn.Module()
    packed_first.packed = nn.Parameter(torch.zeros(4, dtype=torch.uint8), requires_grad=False)
    packed_first.norm = nn.Parameter(torch.zeros(4, dtype=torch.bfloat16))
    assert model_dtype(packed_first) == torch.bfloat16
    assert [master_dtype(d) for d in (torch.bfloat16, torch.float16, torch.uint8, torch.float32, torch.float64)] == \
        [torch.float32, torch.float32, torch.float32, torch.float32, torch.float64]


# --- the helpers follow the model's device -------------------------------------------------------------------

class ReachedModel(Exception):
    """The model was called with every input on its device (a meta model can compute nothing further)."""


def assert_inputs_follow(model: nn.Module, args: tuple, kwargs: dict) -> None:
    """Every tensor argument is on the model's device; every floating-point one is in the model's dtype."""
    device, dtype = model_device(model), model_dtype(model)
    for name, value in [*enumerate(args), *kwargs.items()]:
        if torch.is_tensor(value):
            assert value.device == device, f"input {name} is on {value.device}, the model on {device}"
            assert not value.is_floating_point() or value.dtype == dtype, \
                f"input {name} is {value.dtype}, the model {dtype}"


def checked(model: nn.Module, calls: list | None = None, stop: bool = False) -> nn.Module:
    """`model` with its forward and `generate` checking their inputs (`assert_inputs_follow`) and counting
    themselves into `calls`; with `stop`, raising `ReachedModel` once the inputs passed."""
    def check(module, args, kwargs):
        assert_inputs_follow(model, args, kwargs)
        if calls is not None:
            calls.append(type(module).__name__)
        if stop:
            raise ReachedModel

    model.register_forward_pre_hook(check, with_kwargs=True)
    if stop and hasattr(model, "generate"):  # generate on meta would stop at its first data-dependent check
        model.generate = lambda *args, **kwargs: check(model, args, kwargs)
    return model


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from course.models import PackagedAssetMissing, resolve_model_path

    try:
        folder = resolve_model_path("smollm2-135m-instruct", "causal_lm", "smollm2-135m-instruct")
    except PackagedAssetMissing:
        pytest.skip("the packaged SmolLM2 tokenizer is not prepared (run `make setup`)")
    return AutoTokenizer.from_pretrained(folder)


def llama_config(vocab_size: int, **overrides) -> LlamaConfig:
    return LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, **overrides)


def distilbert_config(vocab_size: int) -> DistilBertConfig:
    return DistilBertConfig(vocab_size=vocab_size, dim=16, hidden_dim=32, n_layers=2, n_heads=2, num_labels=2)


def on_meta(make):
    """A model built straight onto the meta device: shapes, no weights, no time spent initialising."""
    with torch.device("meta"):
        return make()


def cpu_batch(tokenizer, texts=("A gorgeous, witty film.", "Dull.")) -> dict:
    """A batch as a DataLoader yields it: on the CPU, with labels."""
    batch = dict(tokenizer(list(texts), padding=True, return_tensors="pt"))
    return {**batch, "labels": torch.tensor([1, 0])}


INSTRUCTION = {"task": "numbered_list", "instruction": supervised_instruction.LIST_INSTRUCTION, "context": "tea, rice",
               "output": "1. tea\n2. rice"}
PROMPTS = ["Movie review: the film", "Movie review: a"]
BLOCKS = [{"input_ids": torch.arange(12).view(2, 6), "labels": torch.arange(12).view(2, 6)}]


def cpu_rollout(tokenizer) -> ppo.Rollout:
    """Two prompts with three response tokens each, on the CPU."""
    encoded = ppo._left_padded(tokenizer, PROMPTS)
    responses, response_mask = torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.long)
    return ppo.Rollout(PROMPTS, ["", ""], torch.cat([encoded["input_ids"], responses], 1),
                       torch.cat([encoded["attention_mask"], response_mask], 1), response_mask)


DECODER_HELPERS = {
    "evaluate.perplexity": lambda lm, tok: evaluate.perplexity(lm, BLOCKS),
    "evaluate.generate": lambda lm, tok: evaluate.generate(lm, tok, ["Hello"], max_new_tokens=2, chat=True),
    "instructions.generate_responses": lambda lm, tok: instructions.generate_responses(lm, tok, [INSTRUCTION], 2),
    "ppo.sample_responses": lambda lm, tok: ppo.sample_responses(lm, tok, PROMPTS, max_new_tokens=2),
    "ppo.response_logprobs": lambda lm, tok: ppo.response_logprobs(lm, cpu_rollout(tok)),
    "soft_prompts.prefix_from_text": lambda lm, tok: soft_prompts.prefix_from_text(lm, tok, "a film", 3),
    "lora_distilbert.latency_ms": lambda lm, tok: lora_distilbert.latency_ms(lm, cpu_batch(tok)),
    "train.train": lambda lm, tok: train.train(lm, BLOCKS, steps=1),
}


@pytest.mark.parametrize("helper", DECODER_HELPERS.values(), ids=DECODER_HELPERS.keys())
def test_decoder_helpers_send_inputs_to_the_models_device(tokenizer, helper):
    lm = checked(on_meta(lambda: LlamaForCausalLM(llama_config(len(tokenizer)))), stop=True)
    with pytest.raises(ReachedModel):
        helper(lm, tokenizer)


CLASSIFIER_HELPERS = {
    "evaluate.classification_correct": lambda m, tok: evaluate.classification_correct(m, [cpu_batch(tok)]),
    "transfer.predict": lambda m, tok: transfer.predict(m, tok, ["A gorgeous, witty film.", "Dull."]),
    "transfer.encoder_features": lambda m, tok: transfer.encoder_features(m, [cpu_batch(tok)]),
    "transfer.importance_scores": lambda m, tok: transfer.importance_scores(m, [cpu_batch(tok)], n_batches=1),
    "train.train": lambda m, tok: train.train(m, [cpu_batch(tok)], steps=1),
}


@pytest.mark.parametrize("helper", CLASSIFIER_HELPERS.values(), ids=CLASSIFIER_HELPERS.keys())
def test_classifier_helpers_send_inputs_to_the_models_device(tokenizer, helper):
    model = on_meta(lambda: DistilBertForSequenceClassification(distilbert_config(len(tokenizer))))
    checked(model, stop=True)
    checked(model.base_model, stop=True)  # encoder_features runs the encoder alone
    with pytest.raises(ReachedModel):
        helper(model, tokenizer)


def test_reward_scores_are_read_on_the_models_device(tokenizer):
    reward_model = on_meta(lambda: LlamaForSequenceClassification(
        llama_config(len(tokenizer), num_labels=1, pad_token_id=tokenizer.pad_token_id)))
    with pytest.raises(ReachedModel):
        score_texts(checked(reward_model, stop=True), tokenizer, ["A gorgeous film."])
    positions = pooled_positions(torch.zeros(2, 5, dtype=torch.long, device="meta"), tokenizer.pad_token_id)
    assert positions.device.type == "meta"


def verbalizer_ids(tok):
    return soft_prompts.verbalizer_token_ids(tok)


SOFT_PROMPT_HELPERS = {
    "soft_prompts.verbalizer_correct":
        lambda soft, tok: soft_prompts.verbalizer_correct(soft, [cpu_batch(tok)], verbalizer_ids(tok)),
    "soft_prompts.serve": lambda soft, tok: soft_prompts.serve(
        soft, tok, {"review": soft_prompts.PromptTask(torch.zeros(3, 32), "{text}", soft_prompts.SENTIMENT_WORDS, tok)},
        [("review", "A gorgeous film.")]),
    "train.train": lambda soft, tok: train.train(soft, [cpu_batch(tok)], steps=1,
                                                 loss_fn=soft_prompts.verbalizer_loss_fn(verbalizer_ids(tok))),
}


@pytest.mark.parametrize("helper", SOFT_PROMPT_HELPERS.values(), ids=SOFT_PROMPT_HELPERS.keys())
def test_soft_prompt_helpers_send_inputs_to_the_models_device(tokenizer, helper):
    lm = on_meta(lambda: LlamaForCausalLM(llama_config(len(tokenizer))))
    soft = soft_prompts.SoftPrompt(lm, 3, init_text="a film", tokenizer=tokenizer)
    assert soft.prompt.device.type == "meta" and soft.prompt.dtype == torch.float32
    checked(lm, stop=True)  # the frozen model behind the prompt: the prepended mask and embeddings reach it
    with pytest.raises(ReachedModel):
        helper(soft, tokenizer)


class ToyCausalLM(nn.Module):
    """Embeddings and an output layer: enough of a peft causal LM for PPO's plumbing, and it runs on meta."""

    def __init__(self, vocab_size: int = 16, hidden_size: int = 8):
        super().__init__()
        self.config = SimpleNamespace(hidden_size=hidden_size)
        self.embed = nn.Embedding(vocab_size, hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, input_ids, attention_mask=None, position_ids=None, output_hidden_states=False):
        hidden = self.embed(input_ids)
        return SimpleNamespace(logits=self.head(hidden), hidden_states=(hidden,))

    def generate(self, input_ids, attention_mask, max_new_tokens, **sampling):
        assert_inputs_follow(self, (input_ids, attention_mask), {})
        new = torch.ones(len(input_ids), max_new_tokens, dtype=torch.long, device=input_ids.device)
        return torch.cat([input_ids, new], dim=1)

    @contextmanager
    def disable_adapter(self):
        yield


class WordTokenizer:
    """One id (1) per word, left padding with 0, CPU tensors as a real tokenizer gives them; decoding gives a
    placeholder, since a meta tensor holds no ids to decode."""

    pad_token_id = eos_token_id = 0
    padding_side = "right"

    def __call__(self, texts, return_tensors="pt", padding=True, add_special_tokens=False):
        width = max(len(t.split()) for t in texts)
        mask = torch.tensor([[0] * (width - len(t.split())) + [1] * len(t.split()) for t in texts])
        return {"input_ids": mask.clone(), "attention_mask": mask}

    def batch_decode(self, ids, skip_special_tokens=True):
        return ["good"] * len(ids)


def test_a_ppo_rollout_is_sampled_scored_and_rewarded_on_the_policys_device():
    policy = ppo.PolicyWithValue(checked(on_meta(ToyCausalLM)))
    assert policy.value_head.weight.device.type == "meta"
    experience = ppo.collect_experience(policy, WordTokenizer(), PROMPTS, lambda prompts, responses: [1.0, 0.0],
                                        ppo.PPOSettings(max_new_tokens=3))
    rollout = experience.pop("rollout")
    tensors = {**experience, **{k: v for k, v in vars(rollout).items() if torch.is_tensor(v)}}
    assert {name: t.device.type for name, t in tensors.items()} == {name: "meta" for name in tensors}


def test_4bit_codes_are_unpacked_and_dequantized_on_the_weights_device():
    q = quant.Quantized4bit(packed=torch.zeros(32, dtype=torch.uint8, device="meta"),
                            absmax=torch.ones(1, device="meta"), shape=torch.Size([64]), dtype=torch.float32,
                            blocksize=64)
    assert quant.dequantize_4bit(q).device.type == "meta"


def test_gradient_masks_made_on_the_cpu_apply_to_a_model_elsewhere():
    model = nn.Linear(4, 2, device="meta")
    transfer.apply_gradient_masks(model, {"weight": torch.ones(2, 4, dtype=torch.bool)})
    model(torch.ones(1, 4, device="meta")).sum().backward()
    assert model.weight.grad.device.type == "meta"


# --- end to end: the helpers follow the model's dtype (and, on a GPU, its device) ----------------------------

PLACEMENTS = [pytest.param("cpu", torch.float64, id="cpu-fp64"),
              pytest.param("cuda", torch.float32, id="cuda-fp32-autocast",
                           marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


def placed(model_class, config, device: str, dtype: torch.dtype) -> nn.Module:
    """A seeded random model of `model_class` on `device`, in `dtype`."""
    torch.manual_seed(0)
    return model_class(config).to(device=device, dtype=dtype)


@pytest.fixture
def right_padding(tokenizer):
    """The tokenizer padding on the right, the verbalizer's convention (the decoder helpers pad on the left
    themselves); afterwards, as it was."""
    side, tokenizer.padding_side = tokenizer.padding_side, "right"
    yield tokenizer
    tokenizer.padding_side = side


@pytest.mark.parametrize("device, dtype", PLACEMENTS)
def test_decoder_helpers_run_in_the_models_dtype(right_padding, device, dtype):
    tok, calls = right_padding, []
    lm = checked(placed(LlamaForCausalLM, llama_config(len(tok)), device, dtype), calls)
    assert evaluate.perplexity(lm, BLOCKS) > 1
    assert len(evaluate.generate(lm, tok, ["Hello"], max_new_tokens=2, chat=True)) == 1
    assert len(instructions.generate_responses(lm, tok, [INSTRUCTION], 2)) == 1
    assert soft_prompts.prefix_from_text(lm, tok, "a film", 3).shape[0] == 3
    assert lora_distilbert.latency_ms(lm, cpu_batch(tok), repeats=1) > 0
    assert qlora_llama.max_logit_difference(lm, lm, {"input_ids": cpu_batch(tok)["input_ids"]}) == 0
    adapters.add_adapters(lm, bottleneck=4)
    assert {p.dtype for p in lm.parameters() if p.requires_grad} == {master_dtype(dtype)}
    assert len(train.train(lm, BLOCKS, steps=1).losses) == 1
    assert calls


@pytest.mark.parametrize("device, dtype", PLACEMENTS)
def test_classifier_helpers_run_in_the_models_dtype(right_padding, device, dtype):
    tok, calls = right_padding, []
    model = checked(placed(DistilBertForSequenceClassification, distilbert_config(len(tok)), device, dtype), calls)
    checked(model.base_model, calls)
    assert 0 <= evaluate.classification_accuracy(model, [cpu_batch(tok)]) <= 1
    assert len(transfer.predict(model, tok, ["A gorgeous, witty film.", "Dull."])) == 2
    assert transfer.encoder_features(model, [cpu_batch(tok)])["cls"].dtype == "float32"  # for scikit-learn
    scores = transfer.importance_scores(model, [cpu_batch(tok)], n_batches=1)["grad_x_weight"]
    masks = {name: mask.cpu() for name, mask in transfer.top_fraction_masks(scores, 50).items()}
    transfer.apply_gradient_masks(model, masks)
    assert len(train.train(model, [cpu_batch(tok)], steps=1).losses) == 1
    adapted = lora.add_lora(placed(DistilBertForSequenceClassification, distilbert_config(len(tok)), device, dtype),
                            ["q_lin", "v_lin"], r=2, alpha=4, trainable_modules=["classifier"])
    assert {p.dtype for p in adapted.parameters() if p.requires_grad} == {master_dtype(dtype)}
    assert len(train.train(checked(adapted, calls), [cpu_batch(tok)], steps=1).losses) == 1
    assert calls


@pytest.mark.parametrize("device, dtype", PLACEMENTS)
def test_soft_prompt_helpers_run_in_the_models_dtype(right_padding, device, dtype):
    tok, calls = right_padding, []
    lm = placed(LlamaForCausalLM, llama_config(len(tok)), device, dtype)
    soft = soft_prompts.SoftPrompt(lm, 3, init_text="a film", tokenizer=tok)
    assert soft.prompt.dtype == master_dtype(dtype)
    checked(lm, calls)
    ids = soft_prompts.verbalizer_token_ids(tok)
    result = soft_prompts.train_verbalizer(soft, [cpu_batch(tok)], [cpu_batch(tok)], ids, steps=1, lr=1e-3)
    assert len(result.evaluations[-1]["correct"]) == 2
    task = soft_prompts.PromptTask(soft.prompt, "{text} Sentiment:", soft_prompts.SENTIMENT_WORDS, tok)
    answers = soft_prompts.serve(soft, tok, {"review": task}, [("review", "A gorgeous film.")])
    assert answers[0] in ("negative", "positive")
    assert calls


@pytest.mark.parametrize("device, dtype", PLACEMENTS)
def test_ppo_runs_in_the_models_dtype(device, dtype):
    from peft import LoraConfig, get_peft_model
    from test_ppo import tiny_tokenizer

    tok, calls = tiny_tokenizer(), []  # a vocabulary of 12 words: generation in fp64 is quick
    base = placed(LlamaForCausalLM, llama_config(len(tok)), device, dtype)
    causal_lm = checked(get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"])), calls)
    policy = ppo.PolicyWithValue(causal_lm)
    value_weight = policy.value_head.weight
    assert (value_weight.device, value_weight.dtype) == (model_device(base), master_dtype(dtype))
    reward_model = placed(LlamaForSequenceClassification,
                          llama_config(len(tok), num_labels=1, pad_token_id=tok.pad_token_id), device, dtype)
    reward = rlhf.reward_function(checked(reward_model, calls), tok)
    settings = ppo.PPOSettings(rollout_size=2, minibatch_size=2, epochs=1, max_new_tokens=2)
    result = ppo.train_ppo(policy, tok, PROMPTS, reward, iterations=1, settings=settings)
    assert len(result.evaluations) == 1
    assert rlhf.evaluate_policy(causal_lm, tok, PROMPTS, reward, max_new_tokens=2)["n_prompts"] == 2
    assert calls
