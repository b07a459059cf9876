import pandas as pd
import pytest

from course import choosing


def records() -> pd.DataFrame:
    rows = [
        ("full fine-tuning", "sentiment", "test accuracy", 0.5, 0.80, 1000, 1000),
        ("LoRA r=8 (q_lin, v_lin)", "sentiment", "test accuracy", 0.5, 0.78, 10, 1010),
        ("head only", "sentiment", "test accuracy", 0.5, 0.60, 1, 1000),
        ("full fine-tuning", "docs", "held-out perplexity", 20.0, 12.0, 1000, 1000),
        ("LoRA r=16", "docs", "held-out perplexity", 20.0, 14.0, 30, 1030),
        ("all (full)", "parameter count", "trainable share (%)", None, 100.0, 1000, 1000),
    ]
    return pd.DataFrame([{"notebook": "nb", "method": m, "task": t, "metric": k, "baseline": b, "value": v,
                          "trainable_params": n, "total_params": total, "peak_memory_gb": 1.0, "memory_measure": "run",
                          "wall_time_s": 10.0,
                          "profile": "cpu", "hardware": "test"} for m, t, k, b, v, n, total in rows])


def test_families_follow_the_method_names():
    assert choosing.method_family("QLoRA (NF4 + double quant, LoRA r=16)") == "QLoRA"
    assert choosing.method_family("LoRA r=8 (q_lin, v_lin)") == "LoRA"
    assert choosing.method_family("prefix tuning + MLP") == "soft prompts"
    assert choosing.method_family("PPO (ftkit)") == "preference tuning"
    assert choosing.method_family("something new") == "other"


def test_gain_is_positive_when_better_whatever_the_metric():
    table = choosing.course_table(records())
    assert len(table) == 5  # the parameter count has no baseline
    gains = table.set_index(["method", "task"])["gain"]
    assert gains[("full fine-tuning", "sentiment")] == pytest.approx(0.30)
    assert gains[("LoRA r=16", "docs")] == pytest.approx(6.0)  # perplexity fell from 20 to 14


def test_a_whole_process_peak_is_left_out_and_named():
    old = records()
    old.loc[old["method"] == "head only", "memory_measure"] = None
    old.loc[old["method"] == "head only", "notebook"] = "03_transfer_learning"
    table = choosing.course_table(old)
    memory = table.set_index(["method", "task"])["peak_memory_gb"]
    assert pd.isna(memory[("head only", "sentiment")]) and memory[("full fine-tuning", "sentiment")] == 1.0
    note = choosing.memory_left_out(old)
    assert "1 run from 03_transfer_learning" in note and "Rerun that notebook" in note
    assert choosing.memory_left_out(records()) == ""


def test_cheapest_method_keeping_most_of_the_gain():
    cheapest = choosing.cheapest_good_enough(choosing.course_table(records()), keep=0.9).set_index("task")
    assert cheapest.loc["sentiment", "cheapest_keeping_most"] == "LoRA r=8 (q_lin, v_lin)"  # 0.28 >= 0.9 x 0.30
    assert cheapest.loc["docs", "cheapest_keeping_most"] == "full fine-tuning"  # LoRA keeps 6 of 8: too little


def test_decision_guide_cites_the_measured_numbers():
    table = choosing.course_table(records())
    guide = choosing.decision_guide(table, choosing.memory_by_scale(scales=("Llama-2-7B",)))
    assert "LoRA r=8 (q_lin, v_lin) 50.0% -> 78.0% test accuracy" in guide
    assert "on sentiment it beat feature extraction and trailed full fine-tuning" in guide
    assert "Llama-2-7B 102 GiB (smallest GPU that fits: none listed)" in guide


def test_memory_plans_add_up_and_say_what_fits(monkeypatch):
    import matplotlib.pyplot as plt

    plans = choosing.memory_plans("Llama-2-7B", rank=16, seq_len=512, batch=1, gpu="T4 (16 GB)").set_index("method")
    parts = plans[list(choosing.MEMORY_PARTS)].sum(axis=1)
    assert parts.to_numpy() == pytest.approx(plans["needed_gb"].to_numpy())
    assert plans["fits"].to_dict() == {"full fine-tuning": False, "LoRA": True, "QLoRA": True}
    assert plans.loc["LoRA", "needed_gb"] == pytest.approx(14.0, abs=0.1)  # as memory_by_scale predicts
    longer = choosing.memory_plans("Llama-2-7B", seq_len=4096).set_index("method")
    assert (longer["activations_gb"] > plans["activations_gb"]).all() and not longer.loc["LoRA", "fits"]

    monkeypatch.setattr(plt, "show", lambda: None)
    choosing.plot_memory_plans("Llama-2-7B", seq_len=4096)
    ax = plt.gcf().axes[0]
    assert "Llama-2-7B" in ax.get_title() and "4096" in ax.get_title() and "GiB" in ax.get_xlabel()
    assert any("does not fit" in t.get_text() for t in ax.texts)
    plt.close(plt.gcf())
