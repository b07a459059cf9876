"""course.supervised_instruction: notebook 02's multi-task instruction set, its padding widget and its exercise check."""
import torch

from course import supervised_instruction
from ftkit import instructions


def test_course_tasks_have_disjoint_held_out_splits():
    train, test = supervised_instruction.numbered_list_examples(20, 10, seed=0)
    assert len(train) == 20 and len(test) == 10
    assert not {e["context"] for e in train} & {e["context"] for e in test}
    assert all(instructions.follows_format(e, e["output"]) for e in train + test)


def test_padding_is_counted_per_batch_and_grouping_saves_it(capsys):
    lengths = [10, 2, 10, 2]
    assert supervised_instruction.padded_positions(lengths, [[0, 1], [2, 3]]) == 16
    assert supervised_instruction.padded_positions(lengths, [[0, 2], [1, 3]]) == 0
    supervised_instruction.show_padding_saved([10, 2] * 50, 2)
    line = capsys.readouterr().out
    assert "length-grouped batches 0 (0%)" in line and "batch size 2, 100 rows, 600 real tokens" in line
    supervised_instruction.show_padding_saved([10, 2] * 50, 1)
    assert "shuffled batches pad 0 tokens" in capsys.readouterr().out


def _rows(prompts, responses):
    return [p + r for p, r in zip(prompts, responses)]


def _padded(rows, value):
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


def test_masking_the_response_instead_of_the_prompt_is_caught():
    def response_only_batch(prompts, responses, pad_token_id):
        labels = [p + [-100] * len(r) for p, r in zip(prompts, responses)]
        return _padded(_rows(prompts, responses), pad_token_id), _padded(labels, -100)

    verdict = supervised_instruction.check_response_only_labels(response_only_batch)
    assert not verdict.correct and "element (0, 0) should be -100" in verdict.message


def test_labels_without_any_mask_are_caught():
    def response_only_batch(prompts, responses, pad_token_id):
        ids = _padded(_rows(prompts, responses), pad_token_id)
        return ids, ids.clone()

    verdict = supervised_instruction.check_response_only_labels(response_only_batch)
    assert not verdict.correct and "should be -100" in verdict.message


def test_padding_left_as_a_real_label_is_caught():
    def response_only_batch(prompts, responses, pad_token_id):
        labels = [[-100] * len(p) + r for p, r in zip(prompts, responses)]
        return _padded(_rows(prompts, responses), pad_token_id), _padded(labels, pad_token_id)

    verdict = supervised_instruction.check_response_only_labels(response_only_batch)
    assert not verdict.correct and "should be -100 but is 2" in verdict.message


def test_masking_every_pad_id_hides_the_end_of_turn_and_is_caught():
    def response_only_batch(prompts, responses, pad_token_id):
        ids = _padded(_rows(prompts, responses), pad_token_id)
        labels = _padded([[-100] * len(p) + r for p, r in zip(prompts, responses)], pad_token_id)
        return ids, labels.masked_fill(labels == pad_token_id, -100)

    verdict = supervised_instruction.check_response_only_labels(response_only_batch)
    assert not verdict.correct and "should be 2 but is -100" in verdict.message
