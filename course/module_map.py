"""The module map of the library and the course, read from the code itself: what each module holds (the
first sentence of its docstring) and which of our modules it imports (from its source, parsed).

`python -m course.readme` writes it into the README and `docs/architecture.md`; `tests/test_architecture.py`
checks the rule the map shows: `ftkit` never imports `course`.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

from course import REPO_ROOT

PACKAGES = ("ftkit", "course")


def modules(package: str) -> list[Path]:
    """The package's modules, `__init__` excluded, in name order."""
    return sorted(path for path in (REPO_ROOT / package).glob("*.py") if path.stem != "__init__")


def summary(path: Path) -> str:
    """The first sentence of the module's docstring, on one line, without its closing full stop."""
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    paragraph = " ".join(docstring.split("\n\n")[0].split())
    match = re.match(r"(.+?)\.(\s+[A-Z`]|$)", paragraph)  # "et al. 2019" does not end a sentence
    return match.group(1) if match else paragraph


def imports_of_ours(path: Path) -> list[str]:
    """Our modules that the module imports anywhere in its source, as `package.module`, sorted."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            top = node.module.split(".")[0]
            if node.module in PACKAGES:
                found |= {f"{top}.{alias.name}" for alias in node.names}
            elif top in PACKAGES:
                found.add(".".join(node.module.split(".")[:2]))
        elif isinstance(node, ast.Import):
            found |= {".".join(alias.name.split(".")[:2]) for alias in node.names
                      if alias.name.split(".")[0] in PACKAGES and "." in alias.name}
    found.discard(f"{path.parent.name}.{path.stem}")
    return sorted(name for name in found if not name.endswith(".REPO_ROOT"))


def totals() -> str:
    """One line: how many modules each package has and how many lines they hold (every line, as `wc -l`)."""
    counts = [(package, modules(package)) for package in PACKAGES]
    parts = [f"`{package}` {len(paths)} modules, {sum(len(p.read_text().splitlines()) for p in paths):,} lines"
             for package, paths in counts]
    return "Now: " + "; ".join(parts) + " (`__init__` excluded; counted by `python -m course.readme`)."


def table(package: str, with_imports: bool = True) -> str:
    """A Markdown table of the package's modules: name, what it holds and (optionally) which of ours it imports."""
    header = "| module | what it holds |" + (" imports of ours |" if with_imports else "")
    rows = [header, "|---|---|" + ("---|" if with_imports else "")]
    for path in modules(package):
        line = f"| `{path.stem}` | {summary(path)} |"
        if with_imports:
            line += " " + (", ".join(f"`{name}`" for name in imports_of_ours(path)) or "none") + " |"
        rows.append(line)
    return "\n".join(rows)

