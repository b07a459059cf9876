"""Notebook 04's exercise checks catch the typical mistakes (stubs and solutions: tests/test_exercises.py)."""
from course.lora_distilbert import check_lora_forward, check_lora_trainable_count


def test_lora_forward_without_the_alpha_over_r_scale_is_caught():
    def lora_forward(x, weight, bias, A, B, alpha, r):
        return x @ weight.T + bias + x @ A.T @ B.T

    verdict = check_lora_forward(lora_forward)
    assert not verdict.correct and "element" in verdict.message and "should be" in verdict.message


def test_lora_forward_with_the_update_transposed_wrongly_is_caught():
    def lora_forward(x, weight, bias, A, B, alpha, r):
        return x @ weight.T + bias + (alpha / r) * (x @ B @ A) if B.shape[0] == A.shape[1] else x

    assert not check_lora_forward(lora_forward).correct


def test_lora_forward_that_forgets_the_bias_is_caught():
    def lora_forward(x, weight, bias, A, B, alpha, r):
        return x @ weight.T + (alpha / r) * (x @ A.T @ B.T)

    assert not check_lora_forward(lora_forward).correct


def test_counting_the_full_update_instead_of_the_two_factors_is_caught():
    verdict = check_lora_trainable_count(lambda d_in, d_out, r: d_in * d_out)
    assert not verdict.correct and "should be 12288" in verdict.message
