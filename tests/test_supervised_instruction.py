"""course.supervised_instruction: notebook 02's multi-task instruction set."""
from course import supervised_instruction
from ftkit import instructions


def test_course_tasks_have_disjoint_held_out_splits():
    train, test = supervised_instruction.numbered_list_examples(20, 10, seed=0)
    assert len(train) == 20 and len(test) == 10
    assert not {e["context"] for e in train} & {e["context"] for e in test}
    assert all(instructions.follows_format(e, e["output"]) for e in train + test)
