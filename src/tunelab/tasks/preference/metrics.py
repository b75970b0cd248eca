"""Preference metrics on held-out pairs, accumulated as sums that add across batches and processes.

reward_accuracy   share of pairs whose chosen answer has the higher mean per-token log-probability: the same statistic
                  for the starting model and the tuned one, whatever the loss
chosen_logp, rejected_logp   mean per-token log-probabilities of the answers (averaged over pairs)
dpo_reward_accuracy, reward_margin   with a reference (dpo, ipo): DPO's implicit rewards beta * (log pi - log ref)
                  summed over the answer; the share of pairs where the chosen one's is higher, and the mean margin
                  (both 0 for the starting model, which is its own reference)
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from tunelab.tasks.preference.losses import rewards

# the order of the sums in a batch's outputs
FIELDS = ("pairs", "correct", "chosen_logp", "rejected_logp", "referenced", "dpo_correct", "margin")


class PreferenceMetrics:
    higher_is_better = {
        "reward_accuracy": True,
        "chosen_logp": True,
        "rejected_logp": False,
        "dpo_reward_accuracy": True,
        "reward_margin": True,
        "loss": False,
    }

    def __init__(self):
        self.sums = np.zeros(len(FIELDS))

    @staticmethod
    def batch_sums(policy, reference: Optional[object], beta: float) -> torch.Tensor:
        """A batch's outputs: the FIELDS summed over its pairs (no gradient)."""
        with torch.no_grad():
            chosen, rejected = policy.chosen_mean.double(), policy.rejected_mean.double()
            sums = [len(chosen), (chosen > rejected).sum(), chosen.sum(), rejected.sum()]
            if reference is None:
                sums += [0, 0, 0]
            else:
                chosen_reward, rejected_reward = rewards(policy, reference, beta)
                margin = (chosen_reward - rejected_reward).double()
                sums += [len(margin), (margin > 0).sum(), margin.sum()]
            return torch.tensor([float(s) for s in sums], dtype=torch.float64)

    def update(self, outputs: torch.Tensor, labels: torch.Tensor) -> None:
        self.sums += outputs.detach().double().cpu().numpy()

    def state(self) -> np.ndarray:
        return self.sums

    def load_state(self, total: np.ndarray) -> None:
        self.sums = np.asarray(total, dtype=float)

    def compute(self) -> dict:
        s = dict(zip(FIELDS, self.sums))
        if not s["pairs"]:
            return {}
        out = {
            "reward_accuracy": s["correct"] / s["pairs"],
            "chosen_logp": s["chosen_logp"] / s["pairs"],
            "rejected_logp": s["rejected_logp"] / s["pairs"],
        }
        if s["referenced"]:
            out["dpo_reward_accuracy"] = s["dpo_correct"] / s["referenced"]
            out["reward_margin"] = s["margin"] / s["referenced"]
        return out
