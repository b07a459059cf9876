"""Differences between two measurements of the same examples, in words that respect their uncertainty.

A gap is the mean per-example difference with its paired standard error (`ftkit.evaluate.paired_difference`).
A gap within two standard errors is a tie: the sentence says so instead of naming a winner. Notebooks and
notebook 08 build their comparison sentences here, so every one of them reads its verdict off the numbers.
"""
from __future__ import annotations

TIE_WITHIN_SE = 2.0  # a gap smaller than this many standard errors is called a tie


def _in_words(count: float) -> str:
    return {1.0: "one", 2.0: "two", 3.0: "three"}.get(count, f"{count:g}")


def is_tie(difference: float, se: float) -> bool:
    """True when `difference` lies within `TIE_WITHIN_SE` standard errors of zero (always, for se=0 and no gap)."""
    return abs(difference) <= TIE_WITHIN_SE * se


def gap_phrase(difference: float, se: float, n: int, *, scale: float = 100, unit: str = "points",
               digits: int = 1) -> str:
    """`+3.2 ± 1.5 points over n=400 (2.1 SE)`: the gap, its standard error and the sample size, scaled
    (100 turns a 0..1 accuracy into percentage points)."""
    z = f"{difference / se:+.1f} SE" if se > 0 else "no spread"
    unit = f" {unit}" if unit else ""
    return f"{scale * difference:+.{digits}f} ± {scale * se:.{digits}f}{unit} over n={n} ({z})"


def relation(difference: float, se: float, *, higher_is_better: bool = True) -> str:
    """`ties with`, `beats` or `trails`: what a paired gap `first - second` says about `first`."""
    if is_tie(difference, se):
        return "ties with"
    return "beats" if (difference > 0) == higher_is_better else "trails"


def movement(change: float, se: float) -> str:
    """`no change`, `up` or `down`: what a paired change over a baseline says, a tie within two standard errors."""
    if is_tie(change, se):
        return "no change"
    return "up" if change > 0 else "down"


def verdict(first: str, second: str, difference: float, se: float, n: int, *, higher_is_better: bool = True,
            **phrase) -> str:
    """One sentence comparing `first` with `second` from the paired gap `first - second`: which is better,
    or that they tie when the gap is within two standard errors. `phrase` goes to `gap_phrase`."""
    numbers = gap_phrase(difference, se, n, **phrase)
    word = relation(difference, se, higher_is_better=higher_is_better)
    if word == "ties with":
        return f"{first} and {second} tie: {numbers}, within {_in_words(TIE_WITHIN_SE)} standard errors"
    return f"{first} {word} {second}: {numbers}"


def against(reference: str, scores: dict, *, higher_is_better: bool = True, scale: float = 100):
    """A table of every entry of `scores` (name -> per-example scores, all on the same examples in the same
    order) against `scores[reference]`: the paired gap and its standard error (scaled, e.g. to points), the
    sample size and the verdict (`tie`, `better` or `worse`)."""
    import pandas as pd

    from ftkit.evaluate import paired_difference

    rows = []
    for name, values in scores.items():
        if name == reference:
            continue
        difference, se = paired_difference(values, scores[reference])
        word = {"ties with": "tie", "beats": "better", "trails": "worse"}[
            relation(difference, se, higher_is_better=higher_is_better)]
        rows.append({"name": name, f"gap vs {reference}": scale * difference, "se": scale * se, "n": len(values),
                     "verdict": word})
    return pd.DataFrame(rows).set_index("name")
