"""Generated blocks in the repository's Markdown files, so that no derived figure or table is typed by hand.

A block is the text between `<!-- name:start -->` and `<!-- name:end -->`; `replace_blocks` puts in what a
function computes now. `python -m course.readme` and `python -m course.distributed --update-docs` write them;
tests check that the committed files are current.
"""
from __future__ import annotations

import re
from typing import Callable


def replace_blocks(text: str, blocks: dict[str, Callable[[], str]], document: str) -> str:
    """`text` with each named block's content replaced by `blocks[name]()`; `document` names the file in errors."""
    for name, make in blocks.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{document} lacks the markers <!-- {name}:start --> / <!-- {name}:end -->.")
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text
