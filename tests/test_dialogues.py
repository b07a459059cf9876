"""The course's dialogue-summary set (data/dialogues/): schema, sizes, no leaks, faithful naming."""
import re

import pytest

from course import data

TOPICS = {"plans", "work", "family", "shopping", "travel", "health", "hobbies", "tech help", "money", "study",
          "misunderstanding", "good news", "bad news", "food", "housing", "pets", "sport", "events"}


@pytest.fixture(scope="module")
def dialogues():
    return data.load_dialogue_summaries(source="offline")


def speakers(dialogue: str) -> list[str]:
    return [line.split(":", 1)[0] for line in dialogue.split("\n")]


def test_split_sizes(dialogues):
    assert len(dialogues["train"]) >= 300 and len(dialogues["validation"]) >= 60 and len(dialogues["test"]) >= 60


def test_schema(dialogues):
    for split in dialogues.values():
        assert split.column_names == ["id", "dialogue", "summary", "topic", "references"]
        for row in split:
            assert row["references"] == [row["summary"]], row["id"]  # one reference each in the course's set
            lines = row["dialogue"].split("\n")
            assert 4 <= len(lines) <= 14, row["id"]
            assert all(re.fullmatch(r"[^:\n]{1,30}: \S.*", line) for line in lines), row["id"]
            assert 2 <= len(set(speakers(row["dialogue"]))) <= 4, row["id"]
            assert row["topic"] in TOPICS, row["id"]
            assert 1 <= len(re.findall(r"[.!?](\s|$)", row["summary"])) <= 2, row["id"]


def test_ids_are_unique_and_no_dialogue_repeats_across_splits(dialogues):
    ids = [i for split in dialogues.values() for i in split["id"]]
    assert len(ids) == len(set(ids))
    normal = lambda text: re.sub(r"\W+", " ", text.lower()).strip()  # noqa: E731
    texts = {name: {normal(t) for t in split["dialogue"]} for name, split in dialogues.items()}
    assert not texts["train"] & texts["validation"]
    assert not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]


def test_each_summary_names_a_speaker_and_does_not_copy_a_line(dialogues):
    for split in dialogues.values():
        for row in split:
            assert any(name in row["summary"] for name in set(speakers(row["dialogue"]))), row["id"]
            for line in row["dialogue"].split("\n"):
                text = line.split(": ", 1)[1]
                assert len(text) < 30 or text not in row["summary"], row["id"]


def test_every_topic_appears_in_every_split(dialogues):
    for split in dialogues.values():
        assert set(split["topic"]) == TOPICS


def test_the_data_card_statistics_are_current(dialogues):
    card = (data.DIALOGUES_DIR / "README.md").read_text()
    block = card.split("<!-- statistics:start -->\n", 1)[1].split("\n<!-- statistics:end -->", 1)[0]
    assert block == data.dialogue_statistics(dialogues)
