"""Solutions to notebook 04's exercises (LoRA on DistilBERT)."""
import torch


def lora_forward(x, weight, bias, A, B, alpha, r):
    frozen = x @ weight.T + bias
    update = (x @ A.T) @ B.T  # k -> r -> d: the d x k matrix B A is never formed
    return frozen + (alpha / r) * update


def lora_trainable_count(d_in, d_out, r):
    return r * d_in + d_out * r
