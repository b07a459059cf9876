"""Every keyword argument that ftkit and the notebooks pass to a library config exists in the pinned
versions. Tutorials break on renames (`evaluation_strategy` -> `eval_strategy`, trl's `max_seq_length`
-> `max_length`); this test catches them before a learner does."""
import ast
import importlib
import inspect
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = {
    "TrainingArguments": "transformers", "BitsAndBytesConfig": "transformers", "GenerationConfig": "transformers",
    "LoraConfig": "peft", "PromptTuningConfig": "peft", "PrefixTuningConfig": "peft",
    "PromptEncoderConfig": "peft", "IA3Config": "peft",
    "SFTConfig": "trl", "RewardConfig": "trl", "DPOConfig": "trl", "GRPOConfig": "trl", "RLOOConfig": "trl",
}


def code_of_notebook(path: Path) -> str:
    """The notebook's code cells as one Python source; shell and magic lines become `pass`."""
    cells = json.loads(path.read_text())["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] == "code":
            for line in "".join(cell["source"]).splitlines():
                stripped = line.lstrip()
                lines.append(line[: len(line) - len(stripped)] + "pass" if stripped.startswith(("!", "%")) else line)
    return "\n".join(lines)


def config_calls(source: str) -> list[tuple[str, str, int]]:
    """(config name, keyword, line) for each keyword argument passed to a checked config."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in CHECKED:
                found += [(name, kw.arg, node.lineno) for kw in node.keywords if kw.arg is not None]
    return found


def unknown_keywords(source: str) -> list[str]:
    problems = []
    for name, keyword, line in config_calls(source):
        accepted = inspect.signature(getattr(importlib.import_module(CHECKED[name]), name)).parameters
        explicit = {p for p, v in accepted.items() if v.kind is not inspect.Parameter.VAR_KEYWORD}
        if keyword not in explicit:
            problems.append(f"line {line}: {name}({keyword}=...) is not an argument in the pinned version")
    return problems


def sources():
    yield from sorted((ROOT / "ftkit").glob("*.py"))
    yield from sorted((ROOT / "course").glob("*.py"))
    yield from sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", list(sources()), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_config_keywords_exist_in_the_pinned_libraries(path):
    source = code_of_notebook(path) if path.suffix == ".ipynb" else path.read_text()
    assert unknown_keywords(source) == []


def test_the_checker_catches_a_renamed_argument():
    source = ("from transformers import TrainingArguments\n"
              "args = TrainingArguments(output_dir='x', evaluation_strategy='epoch')\n"
              "lora = peft.LoraConfig(r=8, lora_alpha=16, rank=4)\n")
    assert unknown_keywords(source) == [
        "line 2: TrainingArguments(evaluation_strategy=...) is not an argument in the pinned version",
        "line 3: LoraConfig(rank=...) is not an argument in the pinned version",
    ]
