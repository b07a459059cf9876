import os

import pytest

from course import config, distributed, prompt_rate_sweep, ulmfit_sweep
from course.notebooks import NOTEBOOKS, NOTEBOOKS_DIR


def test_unknown_profile_lists_the_valid_ones(monkeypatch):
    monkeypatch.setenv("FTKIT_PROFILE", "laptop")
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        config.current_profile()


def test_unknown_model_source_lists_the_valid_ones():
    with pytest.raises(ValueError, match="hub, offline"):
        config.model_source("internet")


def test_profile_defaults_to_the_hardware(monkeypatch):
    import torch

    monkeypatch.delenv("FTKIT_PROFILE", raising=False)
    assert config.current_profile() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_offline_source_switches_the_hub_libraries_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert config.model_source("offline") == "offline"
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"


def test_hub_check_answers_quickly_when_offline(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    began = time.perf_counter()
    assert config.hub_reachable() is False
    assert time.perf_counter() - began < 1


def test_setup_gives_the_notebook_budget_for_the_profile():
    run = config.setup("00_start_here", profile="smoke", models="offline", verbose=False)
    assert run.budget.__dict__ == config.BUDGETS["00_start_here"]["smoke"]
    assert run.model_name("causal_lm") == "smollm2-135m-instruct"
    with pytest.raises(KeyError, match="not one of the course's notebooks; they are: 00_start_here, 01_"):
        config.setup("99_missing", profile="smoke", models="offline", verbose=False)


def test_every_notebook_budget_covers_every_profile():
    for notebook, budgets in config.BUDGETS.items():
        assert set(budgets) == set(config.PROFILES), notebook
        keys = {p: set(b) for p, b in budgets.items()}
        assert len({frozenset(k) for k in keys.values()}) == 1, f"{notebook}: profiles set different keys {keys}"


def test_seeding_repeats_random_numbers():
    import torch

    config.seed_everything(3)
    first = torch.rand(3)
    config.seed_everything(3)
    assert torch.equal(first, torch.rand(3))


def test_the_cpu_profile_never_loads_llama_2_7b_and_the_gpu_profile_does_from_the_hub():
    for source in config.MODEL_SOURCES:
        for role in config.MODEL_NAMES:
            assert "7b" not in config.model_for(role, source, "cpu").lower(), (role, source)
    assert config.model_for("llama", "hub", "gpu") == "NousResearch/Llama-2-7b-hf"
    assert config.model_for("llama", "offline", "gpu") == "smollm2-135m-instruct"
    assert config.model_for("sequence_classifier", "hub", "cpu") == "distilbert-base-uncased"
    with pytest.raises(ValueError, match="profile one of"):
        config.model_for("llama", "hub", "laptop")


def test_every_notebook_says_what_it_loads():
    known = set(config.MODEL_NAMES) | set(config.DATA_NAMES)
    for notebook in NOTEBOOKS.values():
        assert all(u in known or u[0].isupper() for u in notebook.uses), notebook  # roles, data sets, or a packaged set


def test_one_list_of_notebooks_for_the_folder_the_budgets_and_the_tools():
    folder = sorted(path.stem for path in NOTEBOOKS_DIR.glob("[0-9]*.ipynb"))
    assert folder == list(NOTEBOOKS), "notebooks/ and course.notebooks.NOTEBOOKS list different notebooks"
    assert list(config.BUDGETS) and set(config.BUDGETS) == set(NOTEBOOKS)
    assert set(distributed.TASK_NOTEBOOKS.values()) <= set(NOTEBOOKS)
    assert {prompt_rate_sweep.NOTEBOOK, ulmfit_sweep.NOTEBOOK} <= set(NOTEBOOKS)



@pytest.mark.parametrize("cuda, reachable, expected", [(False, True, "offline"), (True, False, "offline"),
                                                        (True, True, "hub")])
def test_the_source_defaults_to_the_hub_only_on_a_gpu_that_reaches_it(monkeypatch, cuda, reachable, expected):
    monkeypatch.delenv("FTKIT_MODELS", raising=False)
    monkeypatch.setattr(config, "device_name", lambda: "cuda" if cuda else "cpu")
    monkeypatch.setattr(config, "hub_reachable", lambda timeout_s=2.0: reachable)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert config.model_source() == expected
    monkeypatch.setenv("FTKIT_MODELS", "offline")  # undo what model_source wrote, as the test began


def test_the_run_config_carries_the_precision_policy():
    run = config.setup("00_start_here", profile="smoke", models="offline", verbose=False)
    assert run.precision.device == run.device
    assert "compute dtype" in config.describe(run)


@pytest.mark.parametrize("capability, shown", [("AVX512", ", AVX-512)"), ("AVX2", ", AVX2)"), ("DEFAULT", "_64)")])
def test_a_cpus_description_names_the_vector_instructions_torch_uses(monkeypatch, capability, shown):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(config.platform, "machine", lambda: "x86_64")
    assert config.hardware_description().endswith(shown)
