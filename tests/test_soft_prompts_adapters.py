"""Notebook 06's widget and exercise checks (`course.soft_prompts_adapters`); stubs and solutions of the exercises:
tests/test_exercises.py."""
import matplotlib
import pytest
import torch
from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, get_peft_model
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from course import soft_prompts_adapters
from course.soft_prompts_adapters import check_bottleneck_adapter, check_prompt_tuning_inputs
from ftkit import adapters
from ftkit.params import count_parameters

matplotlib.use("Agg")


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config)


@pytest.mark.parametrize("method, make_config", [
    ("prompt tuning", lambda: PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5)),
    ("prefix tuning", lambda: PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=5)),
    ("IA3", lambda: IA3Config(task_type="CAUSAL_LM")),
    ("LoRA (q, v)", lambda: LoraConfig(task_type="CAUSAL_LM", r=3, target_modules=["q_proj", "v_proj"])),
])
def test_trainable_counts_agree_with_peft(method, make_config):
    counts = soft_prompts_adapters.trainable_parameters_by_method(tiny_llama().config, n_tokens=5, bottleneck=4, rank=3)
    assert counts[method] == count_parameters(get_peft_model(tiny_llama(), make_config())).trainable


def test_trainable_adapter_count_agrees_with_ftkit_adapters():
    model = tiny_llama()
    adapters.add_adapters(model, bottleneck=4)
    counts = soft_prompts_adapters.trainable_parameters_by_method(model.config, n_tokens=5, bottleneck=4, rank=3)
    assert counts["bottleneck adapters"] == count_parameters(model).trainable


def test_the_widget_draws_every_method_and_prints_the_shares(capsys):
    import matplotlib.pyplot as plt

    config = tiny_llama().config
    soft_prompts_adapters.plot_trainable_parameters(config, 10_000, n_tokens=2, bottleneck=8, rank=1)
    ax = plt.gcf().axes[0]
    assert "2 soft tokens" in ax.get_title() and ax.get_yscale() == "log" and "parameters" in ax.get_ylabel()
    assert len(ax.patches) == 5
    assert "prompt tuning 0.6359%" in capsys.readouterr().out  # 2 x 32 of 10,064
    plt.close("all")


def test_the_widget_builds_as_the_notebook_calls_it():
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    control = widgets.interactive(soft_prompts_adapters.plot_trainable_parameters,
                                  config=widgets.fixed(tiny_llama().config), total=widgets.fixed(10_000),
                                  n_tokens=widgets.IntSlider(value=3, min=1, max=100))
    control.children[0].value = 7  # moving the slider redraws
    assert "7 soft tokens" in plt.gcf().axes[0].get_title()
    plt.close("all")


# Exercises: the checks catch the typical mistakes

def embed_with_prompt(prompt, input_ids, embedding, at_end=False):
    tokens = embedding(input_ids)
    prompts = prompt.unsqueeze(0).expand(input_ids.shape[0], -1, -1)
    return torch.cat([tokens, prompts] if at_end else [prompts, tokens], dim=1)


def test_prompt_appended_at_the_end_is_caught():
    def prompt_tuning_inputs(prompt, input_ids, attention_mask, embedding):
        ones = torch.ones(input_ids.shape[0], prompt.shape[0], dtype=attention_mask.dtype)
        return embed_with_prompt(prompt, input_ids, embedding, at_end=True), torch.cat([attention_mask, ones], dim=1)

    verdict = check_prompt_tuning_inputs(prompt_tuning_inputs)
    assert not verdict.correct and "in value 0 of 2: element" in verdict.message


def test_attention_mask_not_extended_is_caught():
    def prompt_tuning_inputs(prompt, input_ids, attention_mask, embedding):
        return embed_with_prompt(prompt, input_ids, embedding), attention_mask

    verdict = check_prompt_tuning_inputs(prompt_tuning_inputs)
    assert not verdict.correct and "in value 1 of 2: expected shape" in verdict.message


def test_attention_mask_of_all_ones_is_caught():
    def prompt_tuning_inputs(prompt, input_ids, attention_mask, embedding):
        embeds = embed_with_prompt(prompt, input_ids, embedding)
        return embeds, torch.ones(embeds.shape[:2], dtype=torch.long)

    verdict = check_prompt_tuning_inputs(prompt_tuning_inputs)
    assert not verdict.correct and "should be 0 but is 1" in verdict.message


class RightAdapter(nn.Module):
    def __init__(self, hidden, bottleneck):
        super().__init__()
        self.down, self.up = nn.Linear(hidden, bottleneck), nn.Linear(bottleneck, hidden)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h):
        return h + self.up(nn.functional.gelu(self.down(h)))


def test_adapter_without_the_residual_is_caught():
    class Adapter(RightAdapter):
        def forward(self, h):
            return self.up(nn.functional.gelu(self.down(h)))

    verdict = check_bottleneck_adapter(Adapter)
    assert not verdict.correct and "but is 0 " in verdict.message and "residual" in verdict.message


def test_adapter_whose_up_projection_is_not_zero_at_the_start_is_caught():
    class Adapter(RightAdapter):
        def __init__(self, hidden, bottleneck):
            super().__init__(hidden, bottleneck)
            self.up = nn.Linear(bottleneck, hidden)  # default initialisation: not the identity

    verdict = check_bottleneck_adapter(Adapter)
    assert not verdict.correct and "element" in verdict.message and "start at zero" in verdict.message


def test_adapter_with_another_nonlinearity_is_caught_by_the_given_weights():
    class Adapter(RightAdapter):
        def forward(self, h):
            return h + self.up(torch.relu(self.down(h)))

    verdict = check_bottleneck_adapter(Adapter)
    assert not verdict.correct and "element" in verdict.message and "GELU" in verdict.message
    assert check_bottleneck_adapter(RightAdapter).correct
