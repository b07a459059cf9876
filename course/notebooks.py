"""The course's notebooks, in order: the one list that every tool reads.

The README's notebook map and path table, the HTML report, the budgets of `course.config`, the Colab
cells and the sweeps all take their notebook names from `NOTEBOOKS`; `tests/test_config.py` checks that
the `notebooks/` folder holds exactly these.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from course import REPO_ROOT

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


@dataclass(frozen=True)
class Notebook:
    name: str
    teaches: str
    # What it loads: model roles of `course.config.MODEL_NAMES`, data sets of `course.config.DATA_NAMES`,
    # or the name of a data set that ships in a PyPI package.
    uses: tuple[str, ...]

    @property
    def path(self) -> Path:
        return NOTEBOOKS_DIR / f"{self.name}.ipynb"


NOTEBOOKS: dict[str, Notebook] = {notebook.name: notebook for notebook in (
    Notebook("00_start_here",
             "fine-tuning's families, parameter counts on real models, memory of full/LoRA/QLoRA",
             ("causal_lm", "sequence_classifier")),
    Notebook("01_self_supervised",
             "the causal-LM objective, continued pre-training on new-domain text, forgetting",
             ("causal_lm", "movie_sentiment", "Python docs")),
    Notebook("02_supervised_instruction",
             "the five steps of supervised fine-tuning, instruction templates, multi-task data",
             ("causal_lm", "movie_sentiment", "dialogue_summaries", "ChatterBot Q/A", "Chit Chat")),
    Notebook("03_transfer_learning",
             "feature extraction, freezing, ULMFiT's three techniques, parameter importance",
             ("sequence_classifier", "movie_sentiment")),
    Notebook("04_lora_distilbert",
             "LoRA from the matrix algebra up, peft, merging, swapping adapters",
             ("sequence_classifier", "movie_sentiment", "VADER products and tweets")),
    Notebook("05_qlora_llama",
             "NF4 from scratch, double quantization, paged optimizers, QLoRA summarization",
             ("llama", "dialogue_summaries")),
    Notebook("06_soft_prompts_adapters",
             "prompt tuning, prefix tuning, P-tuning, IA3, bottleneck adapters",
             ("causal_lm", "sequence_classifier", "movie_sentiment", "VADER products")),
    Notebook("07_rlhf",
             "a reward model from human ratings, PPO with a KL penalty written out, DPO and GRPO, judged by scorers "
             "they never optimized on a reward-against-KL frontier",
             ("causal_lm", "VADER human ratings")),
    Notebook("08_choosing_a_method",
             "every measured result side by side, a decision guide, memory at 1B/7B/70B, scaling out",
             ()),
)}


def notebook(name: str) -> Notebook:
    """The course's notebook called `name` (without `.ipynb`), or a KeyError that lists the names."""
    if name not in NOTEBOOKS:
        raise KeyError(f"{name!r} is not one of the course's notebooks; they are: {', '.join(NOTEBOOKS)}.")
    return NOTEBOOKS[name]
