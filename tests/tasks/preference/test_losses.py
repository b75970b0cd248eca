"""Preference losses against numbers worked out by hand, and the chunked per-token log-probabilities against plain
log_softmax, values and gradients (tunelab/tasks/preference/losses.py and logps.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tunelab.tasks.preference.logps import sequence_sums, token_logps
from tunelab.tasks.preference.losses import DEFAULTS, LOSSES, NEEDS_REFERENCE, PairLogps, pair_losses, rewards


def pairs(chosen, rejected, chosen_tokens=(1,), rejected_tokens=(1,), dtype=torch.float64) -> PairLogps:
    n = len(chosen)
    return PairLogps(
        torch.tensor(chosen, dtype=dtype),
        torch.tensor(rejected, dtype=dtype),
        torch.tensor(chosen_tokens * n if len(chosen_tokens) == 1 else chosen_tokens),
        torch.tensor(rejected_tokens * n if len(rejected_tokens) == 1 else rejected_tokens),
    )


def close(actual: torch.Tensor, expected: list[float], tol: float = 1e-12) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=actual.dtype), rtol=tol, atol=tol)


def test_per_token_means_and_an_empty_answer():
    logps = pairs([-6.0, -3.0, 0.0], [-8.0, -1.5, -2.0], (3, 1, 0), (4, 3, 2))
    close(logps.chosen_mean, [-2.0, -3.0, 0.0])  # an empty answer: 0 / 1, not NaN
    close(logps.rejected_mean, [-2.0, -0.5, -1.0])


def test_dpo_by_hand():
    # pair 1: chosen log-ratio -10 - -11 = 1, rejected -14 - -12 = -2: margin 3, beta * margin 0.3
    # pair 2: chosen -20 - -18 = -2, rejected -15 - -16 = 1: margin -3
    # pair 3: margin 400, beta * margin 40: -log sigmoid(40) = log(1 + e^-40), tiny and not rounded to a NaN
    policy = pairs([-10.0, -20.0, -5.0], [-14.0, -15.0, -405.0])
    reference = pairs([-11.0, -18.0, -5.0], [-12.0, -16.0, -5.0])
    expected = [math.log(1 + math.exp(-0.3)), math.log(1 + math.exp(0.3)), math.log1p(math.exp(-40))]
    close(pair_losses("dpo", policy, reference, beta=0.1), expected)
    close(pair_losses("dpo", policy, reference, beta=0.1), [0.554355244468527, 0.8543552444685272, 4.2483542552e-18])


def test_sft_weight_adds_the_chosen_answers_mean_negative_log_likelihood():
    # pair 1: DPO margin (-10 - -11) - (-14 - -12) = 3 -> log(1 + e^-0.3); the chosen answer's mean is -10 / 4 = -2.5
    policy = pairs([-10.0], [-14.0], chosen_tokens=(4,))
    reference = pairs([-11.0], [-12.0], chosen_tokens=(4,))
    close(pair_losses("dpo", policy, reference, beta=0.1, sft_weight=0.5), [math.log(1 + math.exp(-0.3)) + 0.5 * 2.5])
    close(pair_losses("dpo", policy, reference, beta=0.1, sft_weight=0.0), [math.log(1 + math.exp(-0.3))])


def test_dpo_sums_log_probabilities_the_token_counts_do_not_matter():
    policy, reference = pairs([-10.0], [-14.0], (3,), (7,)), pairs([-11.0], [-12.0], (5,), (2,))
    close(pair_losses("dpo", policy, reference, beta=0.1), [math.log(1 + math.exp(-0.3))])


def test_dpo_of_a_policy_equal_to_its_reference_is_log_2_per_pair():
    torch.manual_seed(0)
    policy = PairLogps(-20 * torch.rand(5), -20 * torch.rand(5), torch.randint(1, 9, (5,)), torch.randint(1, 9, (5,)))
    close(pair_losses("dpo", policy, policy, beta=0.1), [math.log(2)] * 5, tol=1e-6)


def test_ipo_by_hand_on_per_token_means():
    # pair 1: chosen means -6/3 = -2 (policy), -9/3 = -3 (reference): 1; rejected -8/4 = -2, -4/4 = -1: -1; margin 2
    # pair 2: chosen -2/2 = -1, -2/2 = -1: 0; rejected -30/5 = -6, -5/5 = -1: -5; margin 5
    policy = pairs([-6.0, -2.0], [-8.0, -30.0], (3, 2), (4, 5))
    reference = pairs([-9.0, -2.0], [-4.0, -5.0], (3, 2), (4, 5))
    close(pair_losses("ipo", policy, reference, beta=0.1), [(2 - 5) ** 2, (5 - 5) ** 2])  # 1 / (2 * 0.1) = 5
    close(pair_losses("ipo", policy, reference, beta=0.5), [(2 - 1) ** 2, (5 - 1) ** 2])  # 1 / (2 * 0.5) = 1


def test_orpo_by_hand():
    # chosen mean -2/4 = -0.5, rejected -6/3 = -2; log odds = log p - log(1 - p) with p = e^mean
    lo_c = -0.5 - math.log(1 - math.exp(-0.5))  # 0.43275...
    lo_r = -2 - math.log(1 - math.exp(-2))  # -1.85459...
    expected = 0.5 + 0.1 * math.log(1 + math.exp(-(lo_c - lo_r)))  # NLL 0.5 + lambda * -log sigmoid(2.28735)
    policy = pairs([-2.0], [-6.0], (4,), (3,))
    close(pair_losses("orpo", policy, None, orpo_weight=0.1), [expected])
    close(pair_losses("orpo", policy, None, orpo_weight=0.1), [0.50967058636494])
    close(pair_losses("orpo", policy, None, orpo_weight=0.0), [0.5])  # the chosen answer's NLL alone


def test_orpo_log_odds_stay_accurate_in_fp32_for_answers_near_certain():
    """Means of -1e-5 and -2e-5: 1 - e^mean computed as 1 - exp() in fp32 would lose 3 of its ~7 digits."""
    lo_c = -1e-5 - math.log(1 - math.exp(-1e-5))  # 11.51292...
    lo_r = -2e-5 - math.log(1 - math.exp(-2e-5))  # 10.81977...: the log odds ratio is log 2 + 5e-6
    expected = 1e-5 + 1.0 * math.log(1 + math.exp(-(lo_c - lo_r)))  # 0.40547... (log 1.5 + ...)
    policy = pairs([-3e-5], [-4e-5], (3,), (2,), dtype=torch.float32)
    close(pair_losses("orpo", policy, None, orpo_weight=1.0), [expected], tol=1e-6)


def test_orpo_of_a_chosen_answer_certain_to_fp32_precision_has_finite_gradients():
    chosen = torch.zeros(2, requires_grad=True)  # mean log-probability exactly 0: p = 1, infinite odds unless capped
    policy = PairLogps(chosen, torch.tensor([-3.0, 0.0]), torch.tensor([4, 4]), torch.tensor([2, 2]))
    losses = pair_losses("orpo", policy, None, orpo_weight=0.1)
    losses.sum().backward()
    assert torch.isfinite(losses).all() and torch.isfinite(chosen.grad).all(), (losses, chosen.grad)


def test_simpo_by_hand():
    # pair 1: means -6/3 = -2 and -10/4 = -2.5: beta * 0.5 - gamma = 2 * 0.5 - 1 = 0, loss log 2
    # pair 2: means -4/4 = -1 and -9/3 = -3: 2 * 2 - 1 = 3, loss log(1 + e^-3)
    policy = pairs([-6.0, -4.0], [-10.0, -9.0], (3, 4), (4, 3))
    close(pair_losses("simpo", policy, None, beta=2.0, gamma=1.0), [math.log(2), math.log(1 + math.exp(-3))])
    close(
        pair_losses("simpo", policy, None, beta=2.0, gamma=0.0),
        [math.log(1 + math.exp(-1)), math.log(1 + math.exp(-4))],
    )


@pytest.mark.parametrize("loss", LOSSES)
def test_raising_the_chosen_log_probability_lowers_the_loss_and_raising_the_rejected_one_raises_it(loss):
    chosen = torch.tensor([-12.0, -30.0], dtype=torch.float64, requires_grad=True)
    rejected = torch.tensor([-15.0, -25.0], dtype=torch.float64, requires_grad=True)
    policy = PairLogps(chosen, rejected, torch.tensor([6, 10]), torch.tensor([5, 10]))
    reference = pairs([-13.0, -28.0], [-14.0, -26.0], (6, 10), (5, 10))
    losses = pair_losses(loss, policy, reference, **DEFAULTS[loss])
    losses.sum().backward()
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all(), (loss, chosen.grad, rejected.grad)


def test_dpo_gradient_by_hand():
    # d/d pc of -log sigmoid(beta * m) = -beta * sigmoid(-beta * m); margin 3, beta 0.1
    chosen = torch.tensor([-10.0], dtype=torch.float64, requires_grad=True)
    policy = PairLogps(chosen, torch.tensor([-14.0], dtype=torch.float64), torch.tensor([1]), torch.tensor([1]))
    pair_losses("dpo", policy, pairs([-11.0], [-12.0]), beta=0.1).sum().backward()
    close(chosen.grad, [-0.1 / (1 + math.exp(0.3))])


def test_rewards_by_hand():
    policy, reference = pairs([-10.0, -20.0], [-14.0, -15.0]), pairs([-11.0, -18.0], [-12.0, -16.0])
    chosen, rejected = rewards(policy, reference, beta=0.1)
    close(chosen, [0.1, -0.2])
    close(rejected, [-0.2, 0.1])


def test_defaults_and_which_losses_need_a_reference():
    assert DEFAULTS == {
        "dpo": {"beta": 0.1},
        "ipo": {"beta": 0.1},
        "orpo": {"orpo_weight": 0.1},
        "simpo": {"beta": 2.0, "gamma": 1.0},
    }
    assert NEEDS_REFERENCE == {"dpo": True, "ipo": True, "orpo": False, "simpo": False}
    assert set(DEFAULTS) == set(NEEDS_REFERENCE) == set(LOSSES)


def test_clear_errors():
    policy = pairs([-1.0], [-2.0])
    with pytest.raises(ValueError, match="unknown preference loss 'kto': choose one of dpo, ipo, orpo, simpo"):
        pair_losses("kto", policy, policy, beta=0.1)
    for loss in ("dpo", "ipo"):
        with pytest.raises(ValueError, match=f"the {loss} loss compares the policy with a reference model"):
            pair_losses(loss, policy, None, beta=0.1)
    with pytest.raises(ValueError, match="the ipo loss needs beta > 0, got 0"):
        pair_losses("ipo", policy, policy, beta=0)
    with pytest.raises(ValueError, match="reference log-probabilities are needed"):
        rewards(policy, None, beta=0.1)


def plain_logps(hidden, head, targets):
    return torch.log_softmax(F.linear(hidden, head.weight, head.bias), -1).gather(1, targets[:, None]).squeeze(1)


@pytest.mark.parametrize("trained", ["hidden, weight, bias", "hidden", "weight, bias"])
def test_token_logps_equal_plain_log_softmax_values_and_gradients(trained):
    """Several chunks (37 rows, chunk 8) and a different upstream gradient for each token, as DPO gives."""
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 50, bias=True).double()
    hidden = torch.randn(37, 16, dtype=torch.float64)
    targets = torch.randint(0, 50, (37,))
    weights = torch.randn(37, dtype=torch.float64)  # dloss/dlogp_i, of both signs
    inputs = {"hidden": hidden, "weight": head.weight, "bias": head.bias}
    for name, t in inputs.items():
        t.requires_grad_(name in trained)
    wrt = [t for name, t in inputs.items() if name in trained]
    plain = plain_logps(hidden, head, targets)
    chunked = token_logps(hidden, head, targets, chunk=8)
    torch.testing.assert_close(chunked, plain, rtol=1e-6, atol=1e-6)
    assert chunked.dtype == torch.float64
    for got, want in zip(
        torch.autograd.grad((chunked * weights).sum(), wrt), torch.autograd.grad((plain * weights).sum(), wrt)
    ):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_token_logps_in_fp32_with_a_frozen_head_and_no_bias():
    """The LoRA case: only the hidden states need gradients; 50 rows in chunks of 16 (the last one short)."""
    torch.manual_seed(0)
    head = torch.nn.Linear(32, 300, bias=False).requires_grad_(False)
    hidden = torch.randn(50, 32, requires_grad=True)
    targets = torch.randint(0, 300, (50,))
    weights = torch.randn(50)
    plain = plain_logps(hidden, head, targets)
    chunked = token_logps(hidden, head, targets, chunk=16)
    (grad_plain,) = torch.autograd.grad((plain * weights).sum(), [hidden])
    (grad_chunked,) = torch.autograd.grad((chunked * weights).sum(), [hidden])
    torch.testing.assert_close(chunked, plain, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad_chunked, grad_plain, rtol=1e-6, atol=1e-6)
    assert head.weight.grad is None


def test_token_logps_under_bf16_autocast_are_fp32():
    torch.manual_seed(0)
    head = torch.nn.Linear(32, 300, bias=False).requires_grad_(False)
    hidden = torch.randn(50, 32, requires_grad=True)
    targets = torch.randint(0, 300, (50,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = torch.log_softmax(head(hidden).float(), -1).gather(1, targets[:, None]).squeeze(1)
        chunked = token_logps(hidden, head, targets, chunk=16)
    (grad_plain,) = torch.autograd.grad(plain.sum(), [hidden])
    (grad_chunked,) = torch.autograd.grad(chunked.sum(), [hidden])
    assert chunked.dtype == torch.float32 and grad_chunked.dtype == torch.float32
    torch.testing.assert_close(chunked, plain, rtol=1e-3, atol=1e-2)
    torch.testing.assert_close(grad_chunked, grad_plain, rtol=2e-2, atol=2e-3)


def test_token_logps_without_gradients_keep_no_graph():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 20)
    hidden = torch.randn(10, 8, requires_grad=True)
    targets = torch.randint(0, 20, (10,))
    with torch.no_grad():
        chunked = token_logps(hidden, head, targets, chunk=4)
    assert chunked.grad_fn is None and not chunked.requires_grad
    torch.testing.assert_close(chunked, plain_logps(hidden, head, targets).detach())


def test_sequence_sums_by_hand_and_their_gradient():
    values = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0], requires_grad=True)
    row = torch.tensor([0, 0, 1, 2, 2])
    sums = sequence_sums(values, row, rows=4)  # row 3 has no token
    close(sums, [3.0, 4.0, 24.0, 0.0])
    (sums * torch.tensor([1.0, 10.0, 100.0, 1000.0])).sum().backward()
    close(values.grad, [1.0, 1.0, 10.0, 100.0, 100.0])


def test_dpo_through_token_logps_equals_dpo_through_plain_log_softmax():
    """End to end, two pairs of 3-5 tokens: the per-pair weights reach each token's gradient as in plain autograd."""
    torch.manual_seed(0)
    head = torch.nn.Linear(16, 40).double()
    hidden = torch.randn(15, 16, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 40, (15,))
    row = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3])  # chosen 0 and 1, rejected 2 and 3
    tokens = torch.bincount(row, minlength=4)
    reference = PairLogps(*torch.tensor([[-30.0, -40.0], [-32.0, -41.0]], dtype=torch.float64), tokens[:2], tokens[2:])

    def dpo(logps):
        sums = sequence_sums(logps, row, 4)
        return pair_losses("dpo", PairLogps(sums[:2], sums[2:], tokens[:2], tokens[2:]), reference, beta=0.1).sum()

    chunked, plain = dpo(token_logps(hidden, head, targets, chunk=4)), dpo(plain_logps(hidden, head, targets))
    torch.testing.assert_close(chunked, plain, rtol=1e-9, atol=1e-9)
    wrt = [hidden, head.weight, head.bias]
    for got, want in zip(torch.autograd.grad(chunked, wrt), torch.autograd.grad(plain, wrt)):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
