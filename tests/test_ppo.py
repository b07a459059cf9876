import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from ftkit import ppo

WORDS = ["<eos>", "<unk>", "Movie", "review:", "good", "bad", "film", "the", "is", "a", "great", "plot"]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", pad_token="<eos>", unk_token="<unk>")


def tiny_config(**overrides) -> LlamaConfig:
    return LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       eos_token_id=0, pad_token_id=0, bos_token_id=None, **overrides)


def tiny_policy(seed: int = 0) -> ppo.PolicyWithValue:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    lora = get_peft_model(LlamaForCausalLM(tiny_config()), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                      lora_dropout=0.0))
    return ppo.PolicyWithValue(lora)


# --- PPO pieces -------------------------------------------------------------------------------------

def test_gae_matches_a_hand_computed_case():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.6, 0.7]])
    advantages, returns = ppo.gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=0.95)
    # A2 = 1 - 0.7 = 0.3; A1 = (0.7 - 0.6) + 0.95 * 0.3 = 0.385; A0 = (0.6 - 0.5) + 0.95 * 0.385 = 0.46575
    assert advantages.tolist()[0] == pytest.approx([0.46575, 0.385, 0.3])
    assert returns.tolist()[0] == pytest.approx([0.96575, 0.985, 1.0])


def test_gae_ignores_what_comes_after_a_response_ends():
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    advantages, _ = ppo.gae(torch.tensor([[0.0, 1.0, 5.0]]), torch.tensor([[0.2, 0.4, 9.0]]), mask,
                             gamma=0.9, lam=0.8)
    # A1 = 1 - 0.4 = 0.6 (no next value); A0 = 0.9 * 0.4 - 0.2 + 0.9 * 0.8 * 0.6 = 0.592
    assert advantages.tolist()[0] == pytest.approx([0.592, 0.6, 0.0])


def test_clipped_objective_has_no_gradient_outside_the_clip_range():
    mask = torch.ones(1, 4)
    old = torch.zeros(1, 4)
    # ratios e^0.5 (above 1.2) and e^-0.5 (below 0.8), each with the advantage sign that pushes it further.
    logprobs = torch.tensor([[0.5, -0.5, 0.5, -0.5]], requires_grad=True)
    advantages = torch.tensor([[1.0, -1.0, -1.0, 1.0]])
    loss, clip_fraction = ppo.clipped_surrogate_loss(logprobs, old, advantages, mask, clip_range=0.2)
    loss.backward()
    assert logprobs.grad[0, :2].tolist() == [0.0, 0.0]  # clipped: no gradient
    assert (logprobs.grad[0, 2:] != 0).all()  # moving back toward the old policy is not clipped
    assert clip_fraction.item() == pytest.approx(0.5)


def test_kl_penalty_and_score_land_on_the_right_tokens():
    kl = torch.tensor([[0.5, 0.5, 0.5], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    rewards = ppo.kl_penalized_rewards(torch.tensor([2.0, -1.0]), kl, mask, beta=0.1)
    assert torch.allclose(rewards, torch.tensor([[-0.05, -0.05, 1.95], [-1.1, 0.0, 0.0]]))


def test_response_mask_stops_after_the_first_eos():
    policy = tiny_policy()
    rollout = ppo.sample_responses(policy.causal_lm, tiny_tokenizer(), ["Movie review: the film", "Movie review:"],
                                    max_new_tokens=8, seed=0)
    responses = rollout.sequences[:, rollout.prompt_width:]
    for row, mask in zip(responses, rollout.response_mask):
        ends = (row == 0).nonzero()
        length = ends[0].item() + 1 if len(ends) else len(row)
        assert mask.tolist() == [1] * length + [0] * (len(row) - length)


def test_kl_is_zero_when_the_policy_equals_the_reference():
    policy = tiny_policy()  # LoRA's B starts at zero: the adapter changes nothing yet
    experience = ppo.collect_experience(policy, tiny_tokenizer(), ["Movie review: the film"] * 4,
                                         lambda p, r: [1.0] * len(r), ppo.PPOSettings(max_new_tokens=6))
    assert experience["kl"].abs().max().item() < 1e-6


def test_ppo_resumes_from_a_checkpoint_with_the_same_result(tmp_path):
    settings = ppo.PPOSettings(rollout_size=4, minibatch_size=2, epochs=1, max_new_tokens=4, lr=1e-2)
    prompts = ["Movie review: the film", "Movie review: a great", "Movie review: bad", "Movie review: the plot is"]
    reward = lambda p, r: [float(x.count("good")) for x in r]  # noqa: E731
    tokenizer = tiny_tokenizer()

    torch.manual_seed(0)
    straight = ppo.train_ppo(tiny_policy(), tokenizer, prompts, reward, iterations=3, settings=settings)
    torch.manual_seed(0)
    ppo.train_ppo(tiny_policy(), tokenizer, prompts, reward, iterations=2, settings=settings, checkpoint_dir=tmp_path)
    resumed = ppo.train_ppo(tiny_policy(), tokenizer, prompts, reward, iterations=3, settings=settings,
                             checkpoint_dir=tmp_path)
    assert resumed.resumed_from_step == 2
    assert [e["loss"] for e in resumed.evaluations] == pytest.approx([e["loss"] for e in straight.evaluations])
