"""Notebook 06's sweeps around `ftkit.soft_prompts`: a fresh model trained at each of a few learning rates,
as a table (`course.prompt_rate_sweep` runs them on validation sentences); the trainable parameters of each
method as its knob moves (the notebook's widget); and the checks of its exercises.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ftkit.soft_prompts import train_verbalizer


def learning_rate_sweep(make_model, learning_rates: Sequence[float], train_loader, eval_loader,
                        token_ids: Sequence[int], *, steps: int, method: str):
    """Train a fresh `make_model()` at each learning rate for `steps` steps; return a DataFrame of
    method, learning rate, final training loss (mean of the last three steps) and accuracy.

    `train_loader` may be a function returning a new loader: then every rate trains on the same batches
    (one shuffled loader passed to every run goes on to the next epoch's order each time)."""
    import pandas as pd

    rows = []
    for lr in learning_rates:
        torch.manual_seed(0)
        model = make_model()
        batches = train_loader() if callable(train_loader) else train_loader
        try:
            result = train_verbalizer(model, batches, eval_loader, token_ids, steps=steps, lr=lr,
                                      desc=f"{method} lr {lr:g}")
            last = [loss for _, loss in result.losses[-3:]]
            rows.append({"method": method, "learning_rate": lr, "final_loss": sum(last) / len(last),
                         "accuracy": result.evaluations[-1]["accuracy"]})
        except FloatingPointError:  # a rate so high that the loss diverged: that is a result too
            rows.append({"method": method, "learning_rate": lr, "final_loss": float("nan"), "accuracy": float("nan")})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# Trainable parameters by method (the notebook's widget)
# ---------------------------------------------------------------------------------------------------

def trainable_parameters_by_method(config, n_tokens: int, bottleneck: int, rank: int) -> dict[str, int]:
    """What each method of the notebook trains on a Llama-style decoder with `config` (a transformers config):
    prompt tuning (`n_tokens` x hidden), prefix tuning (`n_tokens` x layers x key and value x kv width), IA3
    (peft's default for Llama: one scale per channel of k_proj, v_proj and down_proj's input), bottleneck
    adapters of width `bottleneck` after the attention and the feed-forward sublayer of every block
    (`ftkit.adapters`), and LoRA of rank `rank` on q_proj and v_proj. Returns {method: parameters}."""
    from ftkit.adapters import adapter_parameter_count

    hidden, layers = config.hidden_size, config.num_hidden_layers
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv_width = (getattr(config, "num_key_value_heads", None) or heads) * head_dim
    return {
        "prompt tuning": n_tokens * hidden,
        "prefix tuning": n_tokens * layers * 2 * kv_width,
        "IA3": layers * (2 * kv_width + config.intermediate_size),
        "bottleneck adapters": 2 * layers * adapter_parameter_count(hidden, bottleneck),
        "LoRA (q, v)": layers * rank * ((hidden + heads * head_dim) + (hidden + kv_width)),
    }


def plot_trainable_parameters(config, total: int, n_tokens: int = 20, bottleneck: int = 16, rank: int = 8):
    """A bar chart (log scale) of `trainable_parameters_by_method` against the frozen model's `total`
    parameters, and one printed line with each method's trainable share of all parameters (the frozen model's
    and the method's). Returns nothing (`interact` would display a returned value)."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from course import plots

    counts = trainable_parameters_by_method(config, n_tokens, bottleneck, rank)
    data = pd.DataFrame({"method": list(counts), "parameters": list(counts.values())})
    plots.set_theme()
    _, ax = plt.subplots(figsize=(10, 4))
    plots.bar_chart(data, "method", "parameters", fmt="{:,.0f}", ax=ax,
                    title=f"Trainable parameters: {n_tokens} soft tokens, bottleneck {bottleneck}, LoRA rank {rank}",
                    xlabel="method", ylabel="trainable parameters (log scale)")
    ax.set_yscale("log")
    ax.set_ylim(100, 3 * total)  # fixed, so that the bars' heights compare from one setting to the next
    ax.axhline(total, linestyle="--", color="gray", label=f"the frozen model ({total:,})")
    ax.legend(fontsize=8, loc="upper left")
    plt.show()
    # the share of all parameters, frozen model plus what the method adds, as `count_parameters` reports it
    print("trainable share: " + " | ".join(f"{method} {100 * n / (total + n):.4f}%" for method, n in counts.items()))


# ---------------------------------------------------------------------------------------------------
# Exercises
# ---------------------------------------------------------------------------------------------------

class _InputRecorder(torch.nn.Module):
    """A stand-in for a causal LM that returns what it is given: the inputs `SoftPrompt` builds."""

    def __init__(self, embedding: torch.nn.Embedding):
        super().__init__()
        self.embedding = embedding

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.embedding

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor):
        return inputs_embeds, attention_mask


def check_prompt_tuning_inputs(prompt_tuning_inputs) -> "Verdict":
    """Check a learner's `prompt_tuning_inputs(prompt, input_ids, attention_mask, embedding)`, which returns the
    `(inputs_embeds, attention_mask)` a prompt-tuned model runs on, against what `ftkit.soft_prompts.SoftPrompt`
    passes to its frozen model. The batches are right-padded, so a mask of all ones cannot pass."""
    from course.exercises import Case, check, fresh_generator
    from ftkit.soft_prompts import SoftPrompt

    def cases():
        g = fresh_generator(606)
        for batch, seq, n, hidden, vocab in [(3, 5, 2, 4, 11), (1, 4, 3, 6, 9), (4, 7, 1, 8, 13)]:
            embedding = torch.nn.Embedding(vocab, hidden)
            with torch.no_grad():
                embedding.weight.copy_(torch.randn(vocab, hidden, generator=g))
            soft = SoftPrompt(_InputRecorder(embedding), n)
            with torch.no_grad():
                soft.prompt.copy_(torch.randn(n, hidden, generator=g))
            input_ids = torch.randint(vocab, (batch, seq), generator=g)
            lengths = torch.randint(1, seq + 1, (batch,), generator=g)
            lengths[0] = seq - 1  # the first row is padded, whatever the draw
            attention_mask = (torch.arange(seq) < lengths.unsqueeze(1)).long()
            with torch.no_grad():
                expected = soft(input_ids, attention_mask)
            yield Case((soft.prompt.detach().clone(), input_ids, attention_mask.clone(), embedding), expected)

    return check("prompt-tuning inputs (ftkit.soft_prompts.SoftPrompt)", prompt_tuning_inputs, cases,
                 hint="each row's input is the n prompt vectors, then its own token embeddings; the mask gets n "
                      "ones in front (the prompt is always attended to) and keeps the row's padding zeros.")


def check_bottleneck_adapter(Adapter) -> "Verdict":
    """Check a learner's adapter class `Adapter(hidden, bottleneck)` (attributes `down` and `up`, nn.Linear
    layers, with a GELU between them) against `ftkit.adapters.BottleneckAdapter`: first that a freshly built
    one returns its input exactly, then that with given non-zero weights it computes what the reference does."""
    from course.exercises import Case, check, fresh_generator
    from ftkit.adapters import BottleneckAdapter

    sizes = [(8, 2, (3, 8)), (12, 4, (2, 5, 12)), (6, 1, (4, 6))]  # hidden, bottleneck, input shape

    def fresh_cases():
        g = fresh_generator(607)
        for hidden, bottleneck, shape in sizes:
            h = torch.randn(shape, generator=g)
            yield Case((hidden, bottleneck, h, None), h.clone())

    def trained_cases():
        g = fresh_generator(608)
        for hidden, bottleneck, shape in sizes:
            reference = BottleneckAdapter(hidden, bottleneck)
            with torch.no_grad():
                for p in reference.parameters():
                    p.copy_(torch.randn(p.shape, generator=g))
            h = torch.randn(shape, generator=g)
            with torch.no_grad():
                expected = reference(h)
            state = {k: v.detach().clone() for k, v in reference.state_dict().items()}
            yield Case((hidden, bottleneck, h, state), expected)

    def build_and_run(hidden, bottleneck, h, state):
        adapter = Adapter(hidden, bottleneck)
        if state is not None:
            adapter.load_state_dict(state)
        with torch.no_grad():
            return adapter(h)

    build_and_run.__name__ = getattr(Adapter, "__name__", "your adapter")
    fresh = check("freshly built adapter (the identity)", build_and_run, fresh_cases,
                  hint="a new adapter must return its input unchanged: its output is h + up(gelu(down(h))), "
                       "with the residual h, and up's weight and bias start at zero.")
    if not fresh.correct:
        return fresh
    return check("bottleneck adapter (ftkit.adapters.BottleneckAdapter)", build_and_run, trained_cases,
                 hint="with non-zero weights the output is h + up(gelu(down(h))): down-projection, GELU, "
                      "up-projection, then the input added back.")
