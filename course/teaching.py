"""The teacher's guide, `docs/teaching.md`: each notebook's measured run time per profile, its exercises and
widgets, and two workshop plans whose lengths are computed from those times. `python -m course.readme`
writes its generated blocks; `tests/test_teaching.py` checks that they are current and that each plan fits.

A plan is a list of steps. A step runs a notebook in the room (`cpu` or `smoke` profile) or reads the outputs
committed with the course (`read`: they come from a `cpu` run), with the teacher's talk and a choice of its
exercises. A step takes its talk or its run, whichever is longer (the run goes on while the teacher talks),
plus its exercises' minutes.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from course.exercises import NotebookExercise, notebook_exercises
from course.notebooks import NOTEBOOKS
from course.results import results_dir

HOW = {"cpu": "run in the room, `cpu` profile", "smoke": "run in the room, `smoke` profile",
       "read": "read the committed `cpu` outputs"}


@dataclass(frozen=True)
class Step:
    notebook: str
    how: str                      # a key of HOW
    talk_minutes: int             # the teacher's explanation and discussion: planned, not measured
    exercises: tuple[str, ...] = ()  # check names, e.g. "check_lora_forward"; their minutes come from the cells
    focus: str = ""


@dataclass(frozen=True)
class Plan:
    title: str
    minutes: int
    steps: tuple[Step, ...]


NINETY_MINUTES = Plan("90 minutes: LoRA, QLoRA and preferences", 90, (
    Step("00_start_here", "cpu", 5, focus="the families of fine-tuning; move the GPU slider to see what fits"),
    Step("04_lora_distilbert", "cpu", 15, ("check_lora_forward",),
         focus="LoRA from the matrix algebra up; low rank of the update"),
    Step("05_qlora_llama", "cpu", 15, ("check_nf4_round_trip",),
         focus="NF4 from scratch, double quantization, the memory of a 7B model"),
    Step("07_rlhf", "read", 10, ("check_bradley_terry", "check_dpo_loss"),
         focus="a reward model from human ratings; PPO's KL penalty; DPO; reward hacking seen by independent judges"),
    Step("08_choosing_a_method", "cpu", 5, focus="the measured results side by side"),
))

ONE_DAY = Plan("A day: the whole course", 6 * 60, (
    Step("00_start_here", "cpu", 15),
    Step("01_self_supervised", "cpu", 20, ("check_next_token_loss",)),
    Step("02_supervised_instruction", "cpu", 25, ("check_response_only_labels",)),
    Step("03_transfer_learning", "cpu", 25, ("check_slanted_triangular", "check_discriminative_rates",
                                             "check_importance_mask")),
    Step("04_lora_distilbert", "cpu", 25, ("check_lora_forward", "check_lora_trainable_count")),
    Step("05_qlora_llama", "cpu", 25, ("check_nf4_round_trip", "check_bits_per_parameter")),
    Step("06_soft_prompts_adapters", "smoke", 25, ("check_prompt_tuning_inputs", "check_bottleneck_adapter")),
    Step("07_rlhf", "smoke", 25, ("check_bradley_terry", "check_gae", "check_clipped_surrogate",
                                  "check_dpo_loss")),
    Step("08_choosing_a_method", "cpu", 15),
))

PLANS = (NINETY_MINUTES, ONE_DAY)


def run_times() -> dict[str, dict]:
    """Each notebook's latest recorded run per profile: {notebook: {profile: {seconds, hardware, date}}}."""
    path = results_dir() / "timings" / "notebooks.json"
    return json.loads(path.read_text()) if path.exists() else {}


def exercises() -> dict[str, list[NotebookExercise]]:
    return {name: notebook_exercises(notebook.path) for name, notebook in NOTEBOOKS.items()}


def exercises_by_check() -> dict[str, NotebookExercise]:
    """Every exercise of the course, by the check its cell ends with."""
    return {e.check_name: e for found in exercises().values() for e in found}


def widget_count(name: str) -> int:
    """Cells of the notebook that build an ipywidgets control (an `interact` call)."""
    cells = json.loads(NOTEBOOKS[name].path.read_text())["cells"]
    return sum(1 for c in cells if c["cell_type"] == "code" and re.search(r"\binteract\(", "".join(c["source"])))


def _minutes(entry: dict | None) -> str:
    return f"{entry['seconds'] / 60:.1f} min" if entry else "not measured yet"


def times_table() -> str:
    times = run_times()
    hardware = sorted({e[p]["hardware"] for e in times.values() for p in e})
    rows = [f"Recorded by `python -m course.run_notebooks` ({'; '.join(hardware) or 'no run recorded'}).", "",
            "| notebook | `smoke` | `cpu` | `gpu` | exercises (minutes) | widgets |", "|---|---|---|---|---|---|"]
    by_notebook = exercises()
    for name in NOTEBOOKS:
        entry = times.get(name, {})
        ex = by_notebook[name]
        rows.append(f"| {name} | {_minutes(entry.get('smoke'))} | {_minutes(entry.get('cpu'))} | "
                    f"{_minutes(entry.get('gpu'))} | {len(ex)} ({sum(e.minutes for e in ex)}) | {widget_count(name)} |")
    return "\n".join(rows)


def exercise_list() -> str:
    rows = ["| notebook | exercise | minutes (planned) | check |", "|---|---|---|---|"]
    for name, found in exercises().items():
        rows += [f"| {name} | {e.title} | {e.minutes} | `{e.check_name}` |" for e in found]
    return "\n".join(rows)


def step_minutes(step: Step, times: dict, by_check: dict[str, NotebookExercise]) -> float:
    """The talk or the run, whichever is longer, plus the chosen exercises' minutes."""
    run = 0.0
    if step.how != "read":
        entry = times.get(step.notebook, {}).get(step.how)
        if entry is None:
            raise ValueError(f"No recorded {step.how} run of {step.notebook}: run "
                             f"`python -m course.run_notebooks --profile {step.how} notebooks/{step.notebook}.ipynb`.")
        run = entry["seconds"] / 60
    unknown = [c for c in step.exercises if c not in by_check]
    if unknown:
        raise ValueError(f"{step.notebook} has no exercise ending with {unknown}: choose from {sorted(by_check)}.")
    return max(step.talk_minutes, run) + sum(by_check[c].minutes for c in step.exercises)


def plan_table(plan: Plan) -> str:
    times = run_times()
    by_check = exercises_by_check()
    rows = ["| notebook | how | talk (min, planned) | run (measured) | exercises | minutes |", "|---|---|---|---|---|---|"]
    total = 0.0
    for step in plan.steps:
        minutes = step_minutes(step, times, by_check)
        total += minutes
        run = _minutes(times.get(step.notebook, {}).get(step.how)) if step.how != "read" else "-"
        chosen = "; ".join(by_check[c].title.rstrip(".") for c in step.exercises) or "-"
        label = f"{step.notebook}" + (f": {step.focus}" if step.focus else "")
        rows.append(f"| {label} | {HOW[step.how]} | {step.talk_minutes} | {run} | {chosen} | {minutes:.0f} |")
    rows.append(f"| **total** | | | | | **{total:.0f} of {plan.minutes}** |")
    return "\n".join(rows)


def plan_total(plan: Plan) -> float:
    times = run_times()
    by_check = exercises_by_check()
    return sum(step_minutes(step, times, by_check) for step in plan.steps)


BLOCKS = {"teaching-times": times_table, "teaching-exercises": exercise_list,
          "plan-90": lambda: plan_table(NINETY_MINUTES), "plan-day": lambda: plan_table(ONE_DAY)}
