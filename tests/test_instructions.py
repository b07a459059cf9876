import pytest
import torch

from course.supervised_instruction import SENTIMENT_INSTRUCTION
from ftkit import instructions
from ftkit.causal_lm import IGNORE_INDEX


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from course.models import cache_dir

    folder = cache_dir() / "models" / "smollm2-135m-instruct"
    if not (folder / "tokenizer.json").exists():
        pytest.skip("the packaged SmolLM2 tokenizer is not prepared (run `make setup`)")
    return AutoTokenizer.from_pretrained(folder)


EXAMPLE = {"task": "sentiment", "instruction": SENTIMENT_INSTRUCTION, "context": "A joy to watch.",
           "output": "positive"}


def test_template_puts_context_only_when_there_is_one():
    assert "### Context" in instructions.render_prompt("Do it.", "some text")
    assert "### Context" not in instructions.render_prompt("Do it.")


def test_labels_mask_exactly_the_prompt(tokenizer):
    row = instructions.tokenize_example(tokenizer, EXAMPLE)
    labelled = [t for t, l in zip(row["input_ids"], row["labels"]) if l != IGNORE_INDEX]
    assert tokenizer.decode(labelled).startswith("positive<|im_end|>")
    n_masked = sum(l == IGNORE_INDEX for l in row["labels"])
    prompt, _ = instructions.to_messages(EXAMPLE)
    prompt_text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    assert tokenizer.decode(row["input_ids"][:n_masked]) == prompt_text


def test_collate_pads_with_ignored_labels(tokenizer):
    rows = [instructions.tokenize_example(tokenizer, EXAMPLE),
            instructions.tokenize_example(tokenizer, {**EXAMPLE, "context": "A long, slow and dull film " * 3})]
    batch = instructions.collate(rows, tokenizer.pad_token_id)
    short = len(rows[0]["input_ids"])
    assert batch["input_ids"].shape[0] == 2
    assert (batch["labels"][0, short:] == IGNORE_INDEX).all() and (batch["attention_mask"][0, short:] == 0).all()


def test_masks_agree_with_trl_sft_trainer(tokenizer, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    examples = [EXAMPLE, {"task": "qa", "instruction": "What is AI?", "context": "", "output": "Machines that think."}]
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    args = SFTConfig(output_dir=str(tmp_path), bf16=False, completion_only_loss=True, max_length=256,
                     report_to="none", use_cpu=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=instructions.trl_dataset(examples),
                         processing_class=tokenizer)
    theirs = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    ours = instructions.collate([instructions.tokenize_example(tokenizer, e) for e in examples], tokenizer.pad_token_id)
    assert torch.equal(theirs["input_ids"], ours["input_ids"])
    assert torch.equal(theirs["labels"] == IGNORE_INDEX, ours["labels"] == IGNORE_INDEX)


def test_format_checks_accept_and_reject():
    lst = {"task": "numbered_list", "context": "a, b, c", "output": "1. a\n2. b\n3. c"}
    assert instructions.follows_format(lst, "1. a\n2. b\n3. c")
    assert not instructions.follows_format(lst, "1. a\n2. b")
    assert not instructions.follows_format(lst, "- a\n- b\n- c")
    assert instructions.follows_format(EXAMPLE, "negative")  # right format, wrong answer
    assert not instructions.follows_format(EXAMPLE, "Positive.")
    starter = {"task": "starter", "options": ["Hi?", "Yo?"]}
    assert instructions.follows_format(starter, "Yo?") and not instructions.follows_format(starter, "Hey?")


def test_scores_exact_match_and_rouge():
    examples = [EXAMPLE, {**EXAMPLE, "output": "negative"}]
    assert instructions.score_task(examples, ["positive", "positive"]) == {"score": 0.5, "format": 1.0}
    qa = [{"task": "qa", "instruction": "q", "context": "", "output": "the cat sat"}]
    assert instructions.score_task(qa, ["the cat sat"])["score"] == pytest.approx(1.0)


def test_length_grouped_batches_cover_every_row_once_and_pad_less():
    lengths = [80 + (i % 5) * 50 for i in range(200)]  # five tasks of very different lengths, interleaved
    grouped = instructions.length_grouped_batches(lengths, batch_size=4, seed=0, megabatch=10)
    assert sorted(i for batch in grouped for i in batch) == list(range(200))
    assert grouped == instructions.length_grouped_batches(lengths, batch_size=4, seed=0, megabatch=10)
    assert grouped != instructions.length_grouped_batches(lengths, batch_size=4, seed=1, megabatch=10)
    in_order = [list(range(i, i + 4)) for i in range(0, 200, 4)]
    padded = lambda batches: sum(len(b) * max(lengths[i] for i in b) for b in batches)  # noqa: E731
    assert padded(grouped) < 0.8 * padded(in_order)


def test_item_scores_are_what_the_task_score_averages():
    examples = [{"task": "sentiment", "output": "positive"}, {"task": "sentiment", "output": "negative"}]
    assert instructions.item_scores(examples, ["positive", " positive"]) == [1.0, 0.0]
    qa = [{"task": "qa", "output": "the cat sat"}, {"task": "qa", "output": "a dog"}]
    each = instructions.item_scores(qa, ["the cat sat", "no"])
    assert each[0] == pytest.approx(1.0) and each[1] == 0.0
    assert instructions.score_task(qa, ["the cat sat", "no"])["score"] == pytest.approx(sum(each) / 2)
    with pytest.raises(ValueError, match="pair up"):
        instructions.item_scores(qa, ["one"])


def test_a_task_without_a_format_rule_is_named_with_the_fix():
    import pytest

    with pytest.raises(ValueError, match="No format rule for task 'haiku'.*add one"):
        instructions.follows_format({**EXAMPLE, "task": "haiku"}, "an old silent pond")
    rules = {**instructions.FORMAT_RULES, "haiku": lambda example, text: len(text.split("\n")) == 3}
    assert instructions.follows_format({**EXAMPLE, "task": "haiku"}, "a\nb\nc", rules=rules)
