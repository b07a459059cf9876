"""Notebook 00's table (`course.start_here`): full fine-tuning, LoRA and QLoRA side by side on one GPU."""
from course import start_here
from ftkit import memory

SEVEN_B = 6_738_415_616


def test_fit_table_rows_are_the_estimates_and_say_which_fit():
    table = start_here.fit_table(SEVEN_B, 16, lora_share=16_777_216 / SEVEN_B)
    assert list(table.index) == list(memory.METHODS)
    assert table["fits"].tolist() == [False, True, True]  # LoRA: 12.8 GiB + 1 GiB overhead, under a T4's 16
    # 3 GiB of activations: LoRA no longer fits
    with_activations = start_here.fit_table(SEVEN_B, 16, 16_777_216 / SEVEN_B, activations_gb=3.0)
    assert with_activations["fits"].tolist() == [False, False, True]
    qlora = memory.training_memory(SEVEN_B, "qlora", trainable_params=16_777_216)
    assert table.loc["qlora", "total_gb"] == round(qlora.total_gb, 2)
