"""`course.gaps` turns paired gaps into words: within two standard errors is a tie, never a winner."""
import pytest

from course import gaps


def test_a_gap_within_two_standard_errors_is_a_tie_and_says_so():
    sentence = gaps.verdict("LoRA", "full fine-tuning", 0.015, 0.01, 400)
    assert sentence.startswith("LoRA and full fine-tuning tie: +1.5 ± 1.0 points over n=400 (+1.5 SE)")
    assert "beats" not in sentence and "trails" not in sentence


@pytest.mark.parametrize("difference, higher_is_better, word", [(0.05, True, "beats"), (-0.05, True, "trails"),
                                                                 (-0.05, False, "beats"), (0.05, False, "trails")])
def test_a_clear_gap_names_the_better_one_whichever_direction_is_better(difference, higher_is_better, word):
    sentence = gaps.verdict("A", "B", difference, 0.01, 100, higher_is_better=higher_is_better)
    assert sentence.startswith(f"A {word} B:")


def test_the_table_against_a_reference_pairs_every_entry_with_it():
    scores = {"full": [1, 1, 0, 0, 1, 0, 1, 0], "same": [1, 1, 0, 0, 1, 0, 1, 0], "all right": [1] * 8,
              "one more": [1, 1, 1, 0, 1, 0, 1, 0]}
    table = gaps.against("full", scores)
    assert list(table.index) == ["same", "all right", "one more"]
    assert table.loc["same", "verdict"] == "tie" and table.loc["same", "gap vs full"] == 0
    assert table.loc["all right", "gap vs full"] == 50 and table.loc["all right", "verdict"] == "better"
    assert table.loc["one more", "verdict"] == "tie"  # one sentence of eight is within noise
    assert (table["n"] == 8).all()


def test_movement_calls_a_change_within_two_standard_errors_no_change():
    from course.gaps import movement

    assert movement(0.3, 0.2) == "no change"
    assert movement(0.5, 0.2) == "up" and movement(-0.5, 0.2) == "down"
