"""Solutions to notebook 02's exercises (supervised and instruction fine-tuning)."""
import torch

IGNORE_INDEX = -100  # cross-entropy skips these labels


def response_only_batch(prompts, responses, pad_token_id):
    rows_ids, rows_labels = [], []
    for prompt, response in zip(prompts, responses):
        rows_ids.append(prompt + response)
        rows_labels.append([IGNORE_INDEX] * len(prompt) + response)  # the response keeps its ids, end of turn too
    width = max(len(ids) for ids in rows_ids)
    input_ids = [ids + [pad_token_id] * (width - len(ids)) for ids in rows_ids]
    labels = [lab + [IGNORE_INDEX] * (width - len(lab)) for lab in rows_labels]  # padding is never a label
    return torch.tensor(input_ids), torch.tensor(labels)
