"""Solutions to notebook 03's exercises (transfer learning)."""
import math

import torch


def slanted_rate(step, total_steps, max_lr, cut_frac, ratio):
    cut = math.floor(cut_frac * total_steps)  # the step of the peak
    if step < cut:
        p = step / cut  # warm-up: 0 -> 1
    else:
        p = 1 - (step - cut) / (total_steps - 1 - cut)  # decay: 1 -> 0 at the last step
    return max_lr * (1 + p * (ratio - 1)) / ratio  # p = 0 gives max_lr / ratio, p = 1 gives max_lr


def discriminative_rates(n_groups, base_lr, factor):
    top = n_groups - 1  # the head
    return [base_lr / factor ** (top - i) for i in range(n_groups)]


def keep_top_scores(scores, n_keep):
    flat = torch.cat([s.flatten() for s in scores.values()])
    threshold = torch.topk(flat, n_keep).values.min()  # the n_keep-th highest score of all tensors together
    return {name: s >= threshold for name, s in scores.items()}
