"""Prompts as a classifier, then prompts that learn: verbalizer scoring and a soft prompt from scratch.

- A **verbalizer** turns a decoder into a classifier without a new head: pose the input as a prompt
  ("... Answer:") and compare the next-token logits of one word per class (" negative", " positive").
  The class whose word the model finds likelier wins.
- A **soft prompt** (prompt tuning, Lester et al. 2021) is `n` trainable vectors prepended to the input
  embeddings of a frozen model. Only the `n x hidden` prompt trains. peft's `PromptTuningConfig` does the
  same; `SoftPrompt` initialises from a text exactly as peft does, so the two agree number for number.
- `nearest_tokens` reads a learned vector back as the vocabulary tokens closest to it by cosine similarity.
- `prefix_from_text` starts prefix tuning where Li & Liang (2021) did: at the keys and values a real text
  produces in every layer, in the layout of peft's `PrefixTuningConfig` (so a prefixed model starts out
  computing exactly what the frozen model computes with that text in front of its input);
  `fit_prefix_encoder` gives the reparameterised variant (prefix + MLP) the same start.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from ftkit.batching import seeded_loader
from ftkit.evaluate import evaluation_mode
from ftkit.precision import master_dtype, model_device, to_device

SENTIMENT_WORDS = (" negative", " positive")  # label 0, label 1


def verbalizer_token_ids(tokenizer, words: Sequence[str] = SENTIMENT_WORDS) -> list[int]:
    """The token id of each class word (label order). Each word must be a single token."""
    ids = []
    for word in words:
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            raise ValueError(f"The verbalizer word {word!r} is {len(pieces)} tokens {pieces}; choose words that "
                             "are one token each (a leading space often helps).")
        ids.append(pieces[0])
    return ids


def few_shot_prefix(examples, template: str, words: Sequence[str] = SENTIMENT_WORDS, text_column: str = "text",
                    label_column: str = "label") -> str:
    """Worked examples for a few-shot prompt: each row of `examples` as `template` followed by its answer."""
    return "".join(template.format(text=row[text_column]) + words[row[label_column]] + "\n\n" for row in examples)


def verbalizer_loader(dataset, tokenizer, template: str, *, batch_size: int, shuffle: bool = False, seed: int = 0,
                      prefix: str = "", text_column: str = "text", label_column: str = "label",
                      by_length: bool = False) -> DataLoader:
    """Batches of `prefix + template.format(text=...)` as `input_ids`/`attention_mask`, plus `labels`.

    Padding goes on the right, so each row's answer is predicted at its last real token. No truncation:
    cutting a prompt would cut its question ("Answer:") first. `by_length` (for evaluation) orders the rows
    from shortest to longest text, so each batch pads little; results come back in that fixed order.
    """
    if tokenizer.padding_side != "right":
        raise ValueError("verbalizer_loader expects right padding (tokenizer.padding_side = 'right').")
    if by_length and shuffle:
        raise ValueError("by_length orders the rows for evaluation; it cannot be combined with shuffle.")

    def collate(rows):
        prompts = [prefix + template.format(text=r[text_column]) for r in rows]
        batch = dict(tokenizer(prompts, padding=True, return_tensors="pt"))
        batch["labels"] = torch.tensor([r[label_column] for r in rows])
        return batch

    order = None
    if by_length:  # the review's own tokens: the same order whatever prefix or template surrounds it
        lengths = [len(ids) for ids in tokenizer(list(dataset[text_column]))["input_ids"]]
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return seeded_loader(dataset, batch_size=batch_size, shuffle=shuffle, seed=seed, collate_fn=collate,
                         sampler=order)


def verbalizer_logits(logits: torch.Tensor, attention_mask: torch.Tensor, token_ids: Sequence[int]) -> torch.Tensor:
    """Class scores (batch, n_classes): the next-token logits of the verbalizer tokens at each row's last token.

    `logits` is (batch, positions, vocab). Soft prompts add positions in front of the input and prefix
    tuning adds none, so the input's positions are always the last `attention_mask.shape[1]` ones.
    """
    length = attention_mask.shape[1]
    logits = logits[:, -length:]
    last = attention_mask.sum(dim=1) - 1  # right padding: the last real token of each row
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[rows, last][:, list(token_ids)]


def verbalizer_scores(model: nn.Module, batch: dict, token_ids: Sequence[int]) -> torch.Tensor:
    """Run `model` on a `verbalizer_loader` batch and return its class scores (batch, n_classes)."""
    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return verbalizer_logits(outputs.logits, batch["attention_mask"], token_ids)


def verbalizer_loss_fn(token_ids: Sequence[int]):
    """A `loss_fn(model, batch)` for `ftkit.train.train`: cross-entropy over the verbalizer tokens' logits."""
    def loss_fn(model: nn.Module, batch: dict) -> torch.Tensor:
        return F.cross_entropy(verbalizer_scores(model, batch, token_ids), batch["labels"])

    return loss_fn


def verbalizer_correct(model: nn.Module, loader, token_ids: Sequence[int]) -> list[int]:
    """1 or 0 per example, in the loader's order: whether the label's verbalizer token gets the higher
    next-token logit. Two models' lists on the same loader pair up (`evaluate.paired_difference`)."""
    with evaluation_mode(model) as device:
        correct = []
        for batch in loader:
            batch = to_device(batch, device)
            predictions = verbalizer_scores(model, batch, token_ids).argmax(-1)
            correct += (predictions == batch["labels"]).long().tolist()
    return correct


def verbalizer_accuracy(model: nn.Module, loader, token_ids: Sequence[int]) -> float:
    """Share of examples (0..1) whose label's verbalizer token gets the higher next-token logit."""
    correct = verbalizer_correct(model, loader, token_ids)
    return sum(correct) / len(correct)


def text_init_token_ids(tokenizer, text: str, n_tokens: int) -> list[int]:
    """`n_tokens` token ids from `text`, cut or repeated to length, exactly as peft's TEXT init does."""
    ids = tokenizer(text)["input_ids"]
    if not ids:
        raise ValueError("The initialisation text gave no tokens.")
    ids = ids * math.ceil(n_tokens / len(ids))
    return ids[:n_tokens]


class SoftPrompt(nn.Module):
    """A frozen causal LM behind `n_tokens` trainable vectors prepended to its input embeddings.

    `prompt` is (n_tokens, hidden), on the embeddings' device in fp32 (fp64 beside an fp64 model: the master
    copy, whatever the frozen model's dtype). With `init_text` (and its `tokenizer`) the vectors start as the
    embeddings of that text's tokens (cut or repeated to `n_tokens`); otherwise as small random values.
    `forward(input_ids, attention_mask, prompt=None)` also takes another prompt, (n, hidden) or one per
    row (batch, n, hidden), so that one frozen model serves several tasks in the same batch.
    """

    def __init__(self, model: nn.Module, n_tokens: int, init_text: str | None = None, tokenizer=None):
        super().__init__()
        self.model = model.requires_grad_(False)
        embedding = model.get_input_embeddings()
        device, dtype = embedding.weight.device, master_dtype(embedding.weight.dtype)
        if init_text is not None:
            if tokenizer is None:
                raise ValueError("Initialising from a text needs the tokenizer.")
            ids = torch.tensor(text_init_token_ids(tokenizer, init_text, n_tokens), device=device)
            start = embedding(ids).detach().clone().to(dtype)
        else:
            start = 0.02 * torch.randn(n_tokens, embedding.embedding_dim, device=device, dtype=dtype)
        self.prompt = nn.Parameter(start)

    @property
    def n_tokens(self) -> int:
        return self.prompt.shape[0]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                prompt: torch.Tensor | None = None, **kwargs):
        prompt = self.prompt if prompt is None else prompt
        batch = input_ids.shape[0]
        if prompt.dim() == 2:
            prompt = prompt.unsqueeze(0).expand(batch, -1, -1)
        embeds = self.model.get_input_embeddings()(input_ids)
        embeds = torch.cat([prompt.to(embeds.dtype), embeds], dim=1)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        ones = attention_mask.new_ones(batch, prompt.shape[1])
        return self.model(inputs_embeds=embeds, attention_mask=torch.cat([ones, attention_mask], dim=1), **kwargs)


def prefix_from_text(model: nn.Module, tokenizer, text: str, n_tokens: int) -> torch.Tensor:
    """The keys and values that `text` (cut or repeated to `n_tokens` tokens) produces in every attention
    layer of `model`, as one (n_tokens, layers x 2 x kv_width) matrix in the layout of peft's prefix
    embedding: for each virtual token, layer 0's key then value, layer 1's key then value, and so on.

    Copy it into `peft_model.prompt_encoder[name].embedding.weight` (prefix tuning without the MLP). Positions
    match too: the prefix occupies positions 0..n-1 and peft's input starts after them.
    """
    with evaluation_mode(model) as device:  # no dropout: the start must be the frozen model's own activations
        ids = torch.tensor([text_init_token_ids(tokenizer, text, n_tokens)], device=device)
        cache = model(input_ids=ids, use_cache=True).past_key_values
    per_layer = [tensor[0].transpose(0, 1).reshape(n_tokens, -1)  # (heads, n, head_dim) -> (n, heads x head_dim)
                 for layer in cache.layers for tensor in (layer.keys, layer.values)]
    return torch.cat(per_layer, dim=-1).float()


def fit_prefix_encoder(encoder: nn.Module, target: torch.Tensor, steps: int = 2000, lr: float = 1e-3) -> float:
    """Train peft's prefix encoder with the reparameterisation MLP (`prefix_projection=True`) so that its output
    for the virtual tokens 0..n-1 equals `target` (from `prefix_from_text`): the MLP variant then starts where
    the direct prefix does. A regression on n rows with no pass through the model: seconds.
    Returns the relative error left, ||output - target|| / ||target||.

    It runs in fp32 without autocast: a regression this small gains no time from 16-bit compute, and bf16's
    rounding (about 0.4% of each value) would sit close to the 1% error the fit is meant to get below."""
    device = model_device(encoder)
    tokens = torch.arange(target.shape[0], device=device)
    target = target.to(device)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    for _ in range(steps):
        loss = (encoder(tokens) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return ((encoder(tokens) - target).norm() / target.norm()).item()


@torch.no_grad()
def nearest_tokens(vectors: torch.Tensor, embedding_matrix: torch.Tensor, tokenizer, k: int = 3):
    """For each row of `vectors` (n, hidden): the `k` vocabulary tokens whose embeddings (vocab, hidden) are
    closest by cosine similarity. Returns a DataFrame: position, then token and similarity columns."""
    import pandas as pd

    similarity = F.normalize(vectors.float(), dim=-1) @ F.normalize(embedding_matrix.float(), dim=-1).T
    values, indices = similarity.topk(k, dim=-1)
    rows = []
    for position, (vals, ids) in enumerate(zip(values.tolist(), indices.tolist())):
        row = {"position": position}
        for rank, (v, i) in enumerate(zip(vals, ids), start=1):
            row[f"token_{rank}"] = tokenizer.decode([i])
            row[f"cosine_{rank}"] = round(v, 3)
        rows.append(row)
    return pd.DataFrame(rows)


def train_verbalizer(model: nn.Module, train_loader, eval_loader, token_ids: Sequence[int], *, steps: int,
                     lr: float, desc: str = "training", **train_kwargs):
    """Train `model` on the verbalizer loss for `steps` steps at `lr`, then measure its accuracy on
    `eval_loader`. Returns the `ftkit.train.TrainResult`, whose last evaluation holds the accuracy and the
    per-example `correct` list (the wall time is the training's alone)."""
    from ftkit.train import train

    result = train(model, train_loader, steps=steps, lr=lr, loss_fn=verbalizer_loss_fn(token_ids), desc=desc,
                   **train_kwargs)
    correct = verbalizer_correct(model, eval_loader, token_ids)
    result.evaluations.append({"step": steps, "accuracy": sum(correct) / len(correct), "correct": correct})
    return result


class PromptTask:
    """One task a frozen model serves through a soft prompt: the prompt (n, hidden), its text template and
    its verbalizer words (one per class, each a single token)."""

    def __init__(self, prompt: torch.Tensor, template: str, words: Sequence[str], tokenizer):
        self.prompt = prompt.detach().clone()
        self.template = template
        self.words = tuple(words)
        self.token_ids = verbalizer_token_ids(tokenizer, words)


def serve(soft: SoftPrompt, tokenizer, tasks: dict[str, PromptTask], requests: Sequence[tuple[str, str]]) -> list[str]:
    """Answer `requests` [(task name, text), ...] in ONE batch through one frozen model: each row gets its
    task's template, soft prompt and verbalizer. Returns the winning verbalizer word of each request."""
    prompts = [tasks[task].template.format(text=text) for task, text in requests]
    with evaluation_mode(soft) as device:
        batch = to_device(tokenizer(prompts, padding=True, return_tensors="pt"), device)
        per_row = torch.stack([tasks[task].prompt.to(device) for task, _ in requests])
        logits = soft(batch["input_ids"], batch["attention_mask"], prompt=per_row).logits
    answers = []
    for row, (task, _) in enumerate(requests):
        scores = verbalizer_logits(logits[row:row + 1], batch["attention_mask"][row:row + 1], tasks[task].token_ids)
        answers.append(tasks[task].words[scores.argmax(-1).item()].strip())
    return answers
