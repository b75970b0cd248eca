"""Preference losses, one per (chosen, rejected) pair: DPO, IPO, ORPO and SimPO, as their papers define them.

Each takes the summed log-probability of each answer's tokens (and the token counts, for the losses that use
per-token means) under the policy, and for DPO and IPO under the reference model too. The conventions follow TRL
(trl/trainer/dpo_trainer.py, trl/experimental/orpo/orpo_trainer.py and cpo/cpo_trainer.py, read at f2cd577) where a
paper leaves a choice open; each such choice is named where it is made.

    dpo    -log sigmoid(beta * ((pc - rc) - (pr - rr)))          sums; Rafailov et al. 2023, Eq. 7
    ipo    ((pc - rc) - (pr - rr) - 1 / (2 beta))^2               per-token means; Azar et al. 2023, Eq. 17 (tau = beta)
    orpo   -mean_c + w * -log sigmoid(log odds(c) - log odds(r))  odds(y) = p / (1 - p), p = exp(mean); Hong et al. 2024
    simpo  -log sigmoid(beta * (mean_c - mean_r) - gamma)         per-token means; Meng et al. 2024, Eq. 6

(pc, pr: the policy's log-probabilities of the chosen and the rejected answer; rc, rr: the reference's; mean_c, mean_r,
for IPO all four: per-token means, an answer's summed log-probability / its tokens; w: orpo_weight.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

# each loss's paper defaults, and which losses need a reference, live with the recipe's section (config.py)
from tunelab.tasks.preference.config import LOSS_DEFAULTS as DEFAULTS
from tunelab.tasks.preference.config import LOSSES, NEEDS_REFERENCE

__all__ = ["DEFAULTS", "LOSSES", "NEEDS_REFERENCE", "PairLogps", "pair_losses", "rewards"]

# ORPO's log odds need log(1 - p): p is held below 1 - 1e-6, since a chosen answer the model is sure of to fp32
# precision (a mean log-probability of exactly 0) would give infinite log odds and NaN gradients
_MAX_MEAN_LOGP = math.log1p(-1e-6)


@dataclass
class PairLogps:
    """Per pair [B]: the log-probabilities summed over each answer's tokens, and each answer's token count."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    chosen_tokens: torch.Tensor
    rejected_tokens: torch.Tensor

    @property
    def chosen_mean(self) -> torch.Tensor:
        return _mean(self.chosen, self.chosen_tokens)

    @property
    def rejected_mean(self) -> torch.Tensor:
        return _mean(self.rejected, self.rejected_tokens)


def _mean(total: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    # an empty answer counts as 0 / 1 (as TRL clamps), not NaN; the data side is where empty answers are refused
    return total / torch.as_tensor(tokens, device=total.device).clamp(min=1).to(total.dtype)


def pair_losses(
    loss: str,
    policy: PairLogps,
    reference: Optional[PairLogps],
    beta: Optional[float] = None,
    gamma: float = 0.0,
    orpo_weight: float = 0.1,
    sft_weight: float = 0.0,
) -> torch.Tensor:
    """[B]: the `loss` of each pair (the caller reduces them). `beta` is DPO's beta, IPO's tau, SimPO's beta (ORPO
    has none: `pair_losses(loss, policy, reference, **DEFAULTS[loss])` works for every loss); `gamma` is SimPO's
    target reward margin; `orpo_weight` is ORPO's lambda. `sft_weight` adds that much of the chosen answer's mean
    per-token negative log-likelihood (RPO, Pang et al. 2024, arXiv:2404.19733; TRL's rpo_alpha): the preference
    loss alone may lower both answers' likelihoods, this keeps the chosen one's rising."""
    return _preference(loss, policy, reference, beta, gamma, orpo_weight) - sft_weight * policy.chosen_mean


def _preference(loss: str, policy: PairLogps, reference: Optional[PairLogps], beta, gamma, orpo_weight) -> torch.Tensor:
    if loss not in LOSSES:
        raise ValueError(f"unknown preference loss {loss!r}: choose one of {', '.join(LOSSES)}")
    if NEEDS_REFERENCE[loss] and reference is None:
        raise ValueError(
            f"the {loss} loss compares the policy with a reference model: reference log-probabilities are needed "
            "(orpo and simpo need none)"
        )
    if loss != "orpo" and (beta is None or not beta > 0):
        raise ValueError(f"the {loss} loss needs beta > 0, got {beta}")
    if loss == "dpo":
        margin = (policy.chosen - reference.chosen) - (policy.rejected - reference.rejected)
        return -F.logsigmoid(beta * margin)
    if loss == "ipo":
        # The paper's log-ratios are over whole answers; like TRL (which confirmed it with the IPO authors) we use
        # per-token means, so the squared loss does not grow with the answers' lengths and tau means the same for all.
        margin = (policy.chosen_mean - reference.chosen_mean) - (policy.rejected_mean - reference.rejected_mean)
        return (margin - 1 / (2 * beta)) ** 2
    if loss == "orpo":
        chosen, rejected = policy.chosen_mean, policy.rejected_mean
        log_odds_ratio = _log_odds(chosen) - _log_odds(rejected)
        # the NLL term is this pair's mean over its chosen answer's tokens (TRL and the authors' code take the mean
        # over all the batch's chosen tokens instead; the two agree when the answers are as long)
        return -chosen - orpo_weight * F.logsigmoid(log_odds_ratio)
    return -F.logsigmoid(beta * (policy.chosen_mean - policy.rejected_mean) - gamma)


def rewards(policy: PairLogps, reference: Optional[PairLogps], beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO's implicit rewards beta * (log pi - log pi_ref) of the chosen and of the rejected answers, [B] each,
    detached (for logging: reward accuracy is chosen > rejected, the reward margin chosen - rejected)."""
    if reference is None:
        raise ValueError(
            "DPO's implicit rewards compare the policy with a reference model: reference log-probabilities are needed"
        )
    chosen = beta * (policy.chosen - reference.chosen)
    rejected = beta * (policy.rejected - reference.rejected)
    return chosen.detach(), rejected.detach()


def _log_odds(mean_logp: torch.Tensor) -> torch.Tensor:
    """log(p / (1 - p)) for p = exp(mean_logp) <= 1, without cancellation: log(1 - e^x) is log(-expm1(x)) near 0
    (p near 1) and log1p(-e^x) below -log 2."""
    x = mean_logp.clamp(max=_MAX_MEAN_LOGP)
    log1mexp = torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))
    return x - log1mexp
