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


def keep_scores(tmp_path, monkeypatch, scores: dict):
    """Per-example scores of the fixture's sentiment runs, as `course.results` keeps them; returns the folder."""
    from course import results

    monkeypatch.setenv("FTKIT_RESULTS", str(tmp_path))
    for method, values in scores.items():
        results._write_scores("nb", (method, "sentiment", "cpu"), values)
    return tmp_path


def test_decision_guide_cites_the_measured_numbers_and_calls_a_gap_within_noise_a_tie(tmp_path, monkeypatch):
    # 100 sentences: full right on 80, LoRA on 78 (two fewer: a tie), head only on 60 (twenty fewer: clear).
    full = [1] * 80 + [0] * 20
    folder = keep_scores(tmp_path, monkeypatch, {"full fine-tuning": full, "LoRA r=8 (q_lin, v_lin)": [1] * 78 + [0] * 22,
                                                 "head only": [1] * 60 + [0] * 40})
    table = choosing.course_table(records())
    guide = choosing.decision_guide(table, choosing.memory_by_scale(scales=("Llama-2-7B",)), scores_dir=folder)
    assert "LoRA r=8 (q_lin, v_lin) 50.0% -> 78.0% test accuracy" in guide
    assert "on sentiment: ties with full fine-tuning (-2.0 ± 1.4 points over n=100 (-1.4 SE))" in guide
    assert "beats feature extraction (+18.0 ± 3.9 points over n=100 (+4.7 SE))" in guide
    assert "beat" not in guide.split("**full fine-tuning**")[1].split("LoRA")[0]  # full vs LoRA: a tie, not a win
    assert "Llama-2-7B 102 GiB (smallest GPU that fits: none listed)" in guide


def test_without_paired_scores_the_guide_ranks_nothing(tmp_path):
    table = choosing.course_table(records())
    guide = choosing.decision_guide(table, choosing.memory_by_scale(scales=("Llama-2-7B",)), scores_dir=tmp_path)
    assert "against full fine-tuning, no paired standard error (not measured on the same examples), so no ranking" in guide
    assert " beats " not in guide and " trails " not in guide


def test_runs_of_different_notebooks_are_never_paired(tmp_path, monkeypatch):
    folder = keep_scores(tmp_path, monkeypatch, {"full fine-tuning": [1, 0, 1], "head only": [0, 0, 1]})
    rows = choosing.course_table(records())
    full, head = (rows[(rows["method"] == m) & (rows["task"] == "sentiment")].iloc[0] for m in ("full fine-tuning", "head only"))
    assert choosing.paired_gap(full, head, folder)[2] == 3
    assert choosing.paired_gap({**full, "notebook": "other"}, head, folder) is None


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


def preference_records() -> pd.DataFrame:
    base = {"notebook": "07_rlhf", "task": "reviews", "metric": "held-out reward", "baseline": 2.0, "n_eval": 64,
            "trainable_params": 10, "total_params": 1000, "peak_memory_gb": 1.0, "memory_measure": "run",
            "wall_time_s": 5.0, "profile": "cpu", "hardware": "test"}
    return pd.DataFrame([
        {**base, "method": "PPO (ftkit)", "value": 5.0, "gain_se": 0.3, "beta": 0.05, "kl_to_reference": 9.0,
         "kl_se": 0.5, "vader_gain": 0.02, "vader_gain_se": 0.03, "second_rm_gain": 1.0, "second_rm_gain_se": 0.2},
        {**base, "method": "DPO (trl), beta 0.1", "value": 2.5, "gain_se": 0.1, "beta": 0.1, "kl_to_reference": 0.5,
         "kl_se": 0.05, "vader_gain": 0.1, "vader_gain_se": 0.02, "second_rm_gain": 0.3, "second_rm_gain_se": 0.1},
        {**records().iloc[0].to_dict()},
    ])


def test_preference_methods_are_read_with_their_kl_and_judges():
    table = choosing.preference_table(preference_records())
    assert list(table["method"]) == ["PPO (ftkit)", "DPO (trl), beta 0.1"]
    assert table.loc[0, "reward_gain"] == pytest.approx(3.0) and table.loc[0, "KL"] == 9.0
    assert table.loc[1, "vader_gain"] == pytest.approx(0.1) and table.loc[1, "n_eval"] == 64
    assert choosing.preference_table(records()).empty  # no preference runs recorded


def test_the_guide_gives_a_preference_run_its_kl_and_judges(tmp_path):
    table = choosing.course_table(preference_records())
    guide = choosing.decision_guide(table, choosing.memory_by_scale(), scores_dir=tmp_path)
    line = next(line for line in guide.splitlines() if "preference tuning" in line)
    assert "KL 9.00 nats" in line and "VADER no change (+0.02 ± 0.03 over n=64 (+0.7 SE))" in line
    assert "second reward model up (+1.00" in line
    assert "KL" not in next(line for line in guide.splitlines() if "full fine-tuning" in line)


def test_a_perplexity_is_paired_by_its_per_block_losses_in_their_own_unit(tmp_path, monkeypatch):
    # Perplexity is exp(mean loss): its per-example scores are losses, and the guide words the gap in nats.
    folder = keep_scores(tmp_path, monkeypatch, {"full fine-tuning": [2.0, 2.1, 2.2, 2.3], "LoRA r=8": [2.5, 2.5, 2.6, 2.8]})
    rows = pd.DataFrame([
        dict(notebook="nb", method=m, task="sentiment", metric="held-out perplexity", value=v, baseline=20.0,
             n_eval=4, gain_se=None, scores_unit="nats per token", trainable_params=t, total_params=100,
             peak_memory_gb=None, memory_measure=None, wall_time_s=None, profile="cpu", hardware="cpu")
        for m, v, t in (("full fine-tuning", 9.0, 100), ("LoRA r=8", 14.0, 1))])
    table = choosing.course_table(rows)
    lora, full = (table[table["method"] == m].iloc[0] for m in ("LoRA r=8", "full fine-tuning"))
    gap, se, n = choosing.paired_gap(lora, full, folder)
    assert gap == pytest.approx(-0.45) and n == 4  # LoRA's losses are higher: negative, as lower is better
    assert choosing.gap_unit(lora) == "nats per token"
    assert "nats per token" in choosing._versus(lora, full, folder) and "perplexity" not in choosing._versus(lora, full, folder)
