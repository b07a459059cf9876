"""Solutions to notebook 01's exercises (self-supervised fine-tuning)."""
import torch.nn.functional as F


def next_token_loss(logits, input_ids):
    predictions = logits[:, :-1, :]  # position t predicts token t + 1: the last position predicts nothing here
    targets = input_ids[:, 1:]  # the first token is nobody's prediction
    vocab = predictions.shape[-1]
    return F.cross_entropy(predictions.reshape(-1, vocab), targets.reshape(-1))
