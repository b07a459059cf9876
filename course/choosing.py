"""Choosing a method: every notebook's measured results in one table, and a decision guide drawn from it.

`course_table` turns the records of `course.results` into one row per (method, task) with the method's
family, its gain over the notebook's own baseline (signed so that positive is better, whatever the metric)
and that gain's paired standard error, its trainable share, peak memory and wall time. `head_to_head` keeps,
per task, the best run of each family; `paired_gap` compares two runs example by example where one notebook
measured both on the same examples (the per-example scores `course.results` keeps), and only there: runs of
different notebooks differ in model, data or budget. `decision_guide` writes its sentences from those
measurements (`course.gaps` words: a gap within two standard errors is a tie) and from `ftkit.memory`'s plans,
so nothing in it is typed ahead of a run.
"""
from __future__ import annotations

import functools

import pandas as pd

from course.gaps import gap_phrase, movement, relation
from course.results import MEMORY_MEASURE, PREFERENCE_JUDGES as JUDGE_NAMES, RECORDED_DIR, load_scores

# (family, words that identify it in a recorded method name), checked in this order.
FAMILIES = (
    ("prompting (no training)", ("zero-shot", "-shot prompt")),
    ("preference tuning", ("PPO", "DPO", "GRPO")),
    ("reward modelling", ("reward model",)),
    ("QLoRA", ("QLoRA",)),
    ("LoRA", ("LoRA",)),
    ("soft prompts", ("prompt tuning", "prefix tuning", "P-tuning")),
    ("adapters and IA3", ("adapter", "IA3")),
    ("feature extraction", ("logistic regression", "head only")),
    ("partial fine-tuning", ("top ",)),
    ("full fine-tuning", ("full fine-tuning", "ULMFiT")),
)
LOWER_IS_BETTER = ("perplexity",)
SCALES = ("TinyLlama-1.1B", "Llama-2-7B", "Llama-2-70B")
GUIDE_GPUS = ("T4 (16 GB)", "A100 (40 GB)", "H100 (80 GB)")
PLAN_METHODS = {"full fine-tuning": "full", "LoRA": "lora", "QLoRA": "qlora"}


def method_family(method: str) -> str:
    """The family of a recorded method name (e.g. `LoRA r=8 (q_lin, v_lin)` -> `LoRA`); `other` if none fits."""
    for family, words in FAMILIES:
        if any(word.lower() in method.lower() for word in words):
            return family
    return "other"


def course_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per trained or prompted method with a baseline: family, task, metric, baseline, value,
    `gain` (value - baseline, sign flipped where lower is better) with `n_eval` and `gain_se` where recorded,
    `share_%`, peak memory, wall time.

    Peak memory is kept only where it is the run's own (`course.results.MEMORY_MEASURE`); see `memory_left_out`."""
    table = records.dropna(subset=["baseline"]).copy()
    table["family"] = table["method"].map(method_family)
    lower = table["metric"].str.contains("|".join(LOWER_IS_BETTER))
    table["gain"] = (table["value"] - table["baseline"]).where(~lower, table["baseline"] - table["value"])
    table["share_%"] = 100 * table["trainable_params"] / table["total_params"]
    # A whole-process peak (records from before the per-run measure) does not compare with a run's own.
    table["peak_memory_gb"] = table["peak_memory_gb"].where(table["memory_measure"] == MEMORY_MEASURE)
    for column in ("n_eval", "gain_se", "scores_unit"):  # absent from records made before they were kept
        if column not in table:
            table[column] = None
    columns = ["notebook", "family", "method", "task", "metric", "baseline", "value", "gain", "n_eval", "gain_se",
               "scores_unit", "trainable_params", "share_%", "peak_memory_gb", "wall_time_s", "profile", "hardware"]
    # Preference runs also carry their KL and the judges' gains (notebook 07): kept for the guide.
    columns += [c for c in ("beta", "kl_to_reference", "kl_se", *(f"{j}{s}" for j in JUDGE_NAMES for s in ("_gain", "_gain_se")))
                if c in table]
    return table[columns].reset_index(drop=True)


def memory_left_out(records: pd.DataFrame) -> str:
    """A sentence naming the notebooks whose recorded peak memory is the whole process's, not the run's own
    (recorded before the per-run measure), and so is left out of memory comparisons; '' when there are none."""
    old = records[records["peak_memory_gb"].notna() & (records["memory_measure"] != MEMORY_MEASURE)]
    if old.empty:
        return ""
    names = sorted(old["notebook"].unique())
    return (f"Peak memory of {len(old)} run{'s' if len(old) != 1 else ''} from {', '.join(names)} is left out: those runs were recorded with the "
            f"whole process's peak, which counts every model the notebook had loaded, and does not compare with "
            f"a run's own. Rerun {'that notebook' if len(names) == 1 else 'those notebooks'} to include them.")


def head_to_head(table: pd.DataFrame) -> pd.DataFrame:
    """For every task measured with more than one family: the best run (largest gain) of each family."""
    best = table.loc[table.groupby(["task", "family"])["gain"].idxmax()]
    shared = best.groupby("task")["family"].transform("nunique") > 1
    return best[shared].sort_values(["task", "gain"], ascending=[True, False]).reset_index(drop=True)


def paired_gap(first, second, scores_dir=RECORDED_DIR) -> tuple[float, float, int] | None:
    """`(gap, standard error, n)` of `first` over `second` (two `course_table` rows), signed so that positive
    means `first` is better, from the per-example scores both records kept, in their unit (`gap_unit`); None
    unless one notebook measured both on the same examples (another notebook's run differs in model, data or
    budget)."""
    from ftkit.evaluate import paired_difference

    if first["notebook"] != second["notebook"] or first["task"] != second["task"]:
        return None
    a, b = (load_scores(r["notebook"], r["method"], r["task"], r["profile"], scores_dir) for r in (first, second))
    if a is None or b is None or len(a) != len(b) or len(a) < 2:
        return None
    gap, se = paired_difference(a, b)
    lower = any(word in first["metric"] for word in LOWER_IS_BETTER)
    return (-gap if lower else gap), se, len(a)


def gap_unit(row) -> str:
    """The unit `paired_gap` reads a row's scores in: its `scores_unit` where recorded (a perplexity's scores
    are per-block losses), else its metric's own."""
    unit = row.get("scores_unit")
    return unit if isinstance(unit, str) and unit else row["metric"]


def memory_by_scale(scales=SCALES, gpus=GUIDE_GPUS, **settings) -> pd.DataFrame:
    """Predicted training memory (GiB, `ftkit.memory.training_plan`) of full fine-tuning, LoRA and QLoRA at
    each scale, and whether it fits each GPU. `settings` go to `training_plan` (rank, seq_len, batch)."""
    from ftkit import memory

    rows = []
    for scale in scales:
        for family, method in PLAN_METHODS.items():
            plan = memory.training_plan(scale, method, gpu=gpus[0], **settings)
            rows.append({"model": scale, "method": family, "needed_gb": plan["needed_gb"],
                         **{gpu: plan["needed_gb"] <= memory.GPUS[gpu] for gpu in gpus}})
    return pd.DataFrame(rows)


def _fmt(value: float, metric: str) -> str:
    return f"{value:.1%}" if "accuracy" in metric or "share" in metric else f"{value:.3g}"


def cheapest_good_enough(table: pd.DataFrame, keep: float = 0.9, scores_dir=RECORDED_DIR) -> pd.DataFrame:
    """Per head-to-head task: the best family, and the family with the fewest trainable parameters that keeps
    at least `keep` (e.g. 90%) of the best gain over the baseline, with its paired gap to the best and that
    gap's standard error where both were measured on the same examples (`paired_gap`)."""
    rows = []
    for task, group in head_to_head(table).groupby("task"):
        best = group.loc[group["gain"].idxmax()]
        close = group[group["gain"] >= keep * best["gain"]]
        cheapest = close.loc[close["trainable_params"].idxmin()]
        gap = paired_gap(cheapest, best, scores_dir) if cheapest["method"] != best["method"] else (0.0, 0.0, None)
        rows.append({"task": task, "metric": best["metric"], "best": best["method"], "best_gain": best["gain"],
                     "cheapest_keeping_most": cheapest["method"], "its_gain": cheapest["gain"],
                     "gap_to_best": gap[0] if gap else None, "gap_se": gap[1] if gap else None,
                     "gap_unit": gap_unit(best) if gap else None,
                     "its_share_%": cheapest["share_%"], "best_share_%": best["share_%"]})
    return pd.DataFrame(rows)


def _memory_sentence(memory_table: pd.DataFrame, family: str) -> str:
    rows = memory_table[memory_table["method"] == family]
    if rows.empty:
        return ""
    gpus = [c for c in memory_table.columns if c not in ("model", "method", "needed_gb")]
    parts = []
    for _, row in rows.iterrows():
        smallest = next((gpu for gpu in gpus if row[gpu]), None)
        parts.append(f"{row['model']} {row['needed_gb']:.0f} GiB (smallest GPU that fits: {smallest or 'none listed'})")
    return " Predicted memory to train: " + "; ".join(parts) + "."


def _versus(mine, theirs, scores_dir) -> str:
    """How `mine` (a head-to-head row) fared against `theirs` on the same task, in words that respect the noise."""
    gap = paired_gap(mine, theirs, scores_dir)
    if gap is None:
        return (f"against {theirs['family']}, no paired standard error (not measured on the same examples), "
                "so no ranking")
    share = "accuracy" in mine["metric"] or "share" in mine["metric"]
    numbers = gap_phrase(*gap, scale=100 if share else 1, unit="points" if share else gap_unit(mine),
                         digits=1 if share else 3)
    return f"{relation(gap[0], gap[1])} {theirs['family']} ({numbers})"


def preference_table(records: pd.DataFrame) -> pd.DataFrame:
    """Preference-tuned policies as notebook 07 measured them: beta, the KL to the reference each reached, the
    paired gain of the reward it optimized and of each judge it never optimized (notebook 07's VADER and second
    reward model), each with its standard error, over `n_eval` held-out prompts. A higher reward alone says
    little: where the judges do not rise with it, the policy found what only its reward model likes."""
    rows = records[records["method"].map(method_family) == "preference tuning"]
    if rows.empty or "kl_to_reference" not in rows:
        return pd.DataFrame()
    table = pd.DataFrame({"method": rows["method"], "beta": rows.get("beta"), "KL": rows["kl_to_reference"],
                          "KL_se": rows.get("kl_se"), "reward_gain": rows["value"] - rows["baseline"],
                          "reward_gain_se": rows["gain_se"]})
    for judge in JUDGE_NAMES:
        for suffix in ("_gain", "_gain_se"):
            table[judge + suffix] = rows.get(judge + suffix)
    table["n_eval"] = rows["n_eval"]
    return table.reset_index(drop=True)


def _judged(row) -> str:
    """`, KL 7.1 nats; VADER +0.21 ± 0.05, ...`: a preference run's KL and judges' gains, '' for other runs."""
    if pd.isna(row.get("kl_to_reference", float("nan"))):
        return ""
    judges = []
    for judge, words in JUDGE_NAMES.items():
        gain, se = row.get(f"{judge}_gain", float("nan")), row.get(f"{judge}_gain_se", float("nan"))
        if pd.notna(gain):
            moved = movement(gain, se)
            judges.append(f"{words} {moved} ({gap_phrase(gain, se, int(row['n_eval']), scale=1, unit='', digits=2)})")
    return f", KL {row['kl_to_reference']:.2f} nats" + (f"; judges never optimized: {', '.join(judges)}" if judges else "")


def decision_guide(table: pd.DataFrame, memory_table: pd.DataFrame, scores_dir=RECORDED_DIR) -> str:
    """Markdown: for each family, what the course measured (its best run per task, with share, time and
    memory), how it fared against other families on the same task (ties called ties: `course.gaps`), and
    the memory it needs at scale."""
    pairs = head_to_head(table)
    lines = []
    for family, _ in FAMILIES:
        runs = table[table["family"] == family]
        if runs.empty:
            continue
        best = runs.loc[runs.groupby("task")["gain"].idxmax()]
        evidence = "; ".join(
            f"{r.task}: {r.method} {_fmt(r.baseline, r.metric)} -> {_fmt(r.value, r.metric)} {r.metric}"
            + (f", {r['share_%']:.3g}% of parameters" if pd.notna(r["share_%"]) and r["share_%"] < 100 else "")
            + (f", {r.wall_time_s:.0f} s" if pd.notna(r.wall_time_s) else "")
            + (f", {r.peak_memory_gb:.1f} GiB" if pd.notna(r.peak_memory_gb) else "")
            + _judged(r)
            for _, r in best.iterrows())
        versus = []
        for task, group in pairs[pairs["family"] != family].groupby("task"):
            mine = pairs[(pairs["task"] == task) & (pairs["family"] == family)]
            if mine.empty:
                continue
            mine = mine.iloc[0]
            versus.append(f"on {task}: " + "; ".join(_versus(mine, theirs, scores_dir) for _, theirs in group.iterrows()))
        lines.append(f"- **{family}** ({len(runs)} run{'s' if len(runs) > 1 else ''}). Best per task: {evidence}."
                     + (f" Head to head: {'; '.join(versus)}." if versus else "")
                     + _memory_sentence(memory_table, family))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Memory of the three methods, component by component, against one GPU
# ---------------------------------------------------------------------------------------------------

MEMORY_PARTS = {"weights_gb": "weights", "gradients_gb": "gradients", "optimizer_gb": "AdamW states",
                "activations_gb": "activations", "overhead_gb": "framework overhead"}


@functools.lru_cache(maxsize=512)
def _training_plan(model: str, method: str, rank: int, seq_len: int, batch: int) -> dict:
    """`ftkit.memory.training_plan`, remembered: the widget revisits the same settings, and the GPU only
    decides whether the total fits."""
    from ftkit import memory

    return memory.training_plan(model, method, rank=rank, seq_len=seq_len, batch=batch)


def memory_plans(model: str = "Llama-2-7B", rank: int = 16, seq_len: int = 512, batch: int = 1,
                 gpu: str = "T4 (16 GB)") -> pd.DataFrame:
    """One row per method of `PLAN_METHODS`: `ftkit.memory.training_plan`'s components (GiB, overhead
    included), the total it needs, the GPU's memory and whether it fits."""
    from ftkit import memory

    if gpu not in memory.GPUS:
        raise ValueError(f"Unknown GPU {gpu!r}; choose one of: {', '.join(memory.GPUS)}.")
    rows = []
    for family, method in PLAN_METHODS.items():
        plan = _training_plan(model, method, rank, seq_len, batch)
        rows.append({"method": family, **{k: plan[k] for k in MEMORY_PARTS if k in plan},
                     "overhead_gb": plan["needed_gb"] - plan["total_gb"], "needed_gb": plan["needed_gb"],
                     "gpu_gb": memory.GPUS[gpu], "fits": plan["needed_gb"] <= memory.GPUS[gpu]})
    return pd.DataFrame(rows)


def plot_memory_plans(model: str = "Llama-2-7B", rank: int = 16, seq_len: int = 512, batch: int = 1,
                      gpu: str = "T4 (16 GB)") -> None:
    """Stacked bars of `memory_plans`: where each method's training memory goes, with the GPU's memory as a
    dashed line and each bar labelled with its total and whether it fits."""
    import matplotlib.pyplot as plt

    plans = memory_plans(model, rank=rank, seq_len=seq_len, batch=batch, gpu=gpu)
    fig, ax = plt.subplots(figsize=(11, 3.2))
    left = pd.Series(0.0, index=plans.index)
    for column, label in MEMORY_PARTS.items():
        ax.barh(plans["method"], plans[column], left=left, label=label)
        left += plans[column]
    limit = plans["gpu_gb"].iloc[0]
    ax.axvline(limit, color="black", linestyle="--", label=f"{gpu}: {limit} GiB")
    for y, row in plans.iterrows():
        ax.annotate(f" {row['needed_gb']:.1f} GiB: {'fits' if row['fits'] else 'does not fit'}",
                    (row["needed_gb"], y), va="center", fontsize=9)
    ax.set_xlim(0, 1.3 * max(plans["needed_gb"].max(), limit))
    ax.invert_yaxis()
    ax.set(title=f"Memory to train {model} (LoRA r = {rank}, {batch} x {seq_len} tokens, gradient checkpointing)",
           xlabel="predicted GPU memory (GiB)", ylabel="method")
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=8)
    fig.tight_layout()
    plt.show()
