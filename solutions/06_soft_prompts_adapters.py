"""Solutions to notebook 06's exercises (soft prompts and bottleneck adapters)."""
import torch
from torch import nn


def prompt_tuning_inputs(prompt, input_ids, attention_mask, embedding):
    batch, n = input_ids.shape[0], prompt.shape[0]
    tokens = embedding(input_ids)                                # (batch, seq, hidden)
    prompts = prompt.unsqueeze(0).expand(batch, -1, -1)          # the same n vectors for every row
    inputs_embeds = torch.cat([prompts, tokens], dim=1)          # in FRONT of the tokens
    prompt_mask = torch.ones(batch, n, dtype=attention_mask.dtype)
    return inputs_embeds, torch.cat([prompt_mask, attention_mask], dim=1)


class Adapter(nn.Module):
    def __init__(self, hidden, bottleneck):
        super().__init__()
        self.down = nn.Linear(hidden, bottleneck)
        self.activation = nn.GELU()
        self.up = nn.Linear(bottleneck, hidden)
        nn.init.zeros_(self.up.weight)  # up(anything) = 0 at the start: the adapter is the identity
        nn.init.zeros_(self.up.bias)

    def forward(self, h):
        return h + self.up(self.activation(self.down(h)))  # the residual keeps the input
