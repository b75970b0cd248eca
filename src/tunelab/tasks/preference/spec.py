"""Preference pairs as the training loop sees it: a row is one pair (the prompt with its chosen answer, the prompt
with its rejected answer); a batch of B pairs is one forward over 2B sequences (chosen first, then rejected), right-
padded (causal attention never looks right, so no mask is needed). The unit of the loss is the pair.

Each sequence's log-probability of its answer tokens is summed from per-token log-probabilities computed from the
final hidden states by chunks (logps.py: never batch x length x vocab logits). The reference's log-probabilities
(DPO, IPO) ride in the rows, computed once before training (reference.py)."""

from __future__ import annotations

import torch

from tunelab.data import IGNORE
from tunelab.tasks.lm.spec import CHUNK, output_head
from tunelab.tasks.preference.config import NEEDS_REFERENCE
from tunelab.tasks.preference.logps import sequence_sums, token_logps
from tunelab.tasks.preference.losses import PairLogps, pair_losses
from tunelab.tasks.preference.metrics import PreferenceMetrics


def collate_pairs(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids / labels [B, 2, L] (0: chosen, 1: rejected), position_ids [B, 2, L]; `reference` [B, 2] where the rows
    carry one."""
    width = max(max(len(r["chosen_ids"]), len(r["rejected_ids"])) for r in rows)
    ids = torch.full((len(rows), 2, width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), 2, width), IGNORE, dtype=torch.long)
    for i, r in enumerate(rows):
        for j, side in enumerate(("chosen", "rejected")):
            n = len(r[f"{side}_ids"])
            ids[i, j, :n] = torch.tensor(r[f"{side}_ids"])
            labels[i, j, :n] = torch.tensor(r[f"{side}_labels"])
    batch = {
        "input_ids": ids,
        "labels": labels,
        "position_ids": torch.arange(width).expand(len(rows), 2, width).contiguous(),
    }
    if "reference" in rows[0]:
        batch["reference"] = torch.tensor([r["reference"] for r in rows], dtype=torch.float64)
    return batch


def answer_logps(model, batch: dict, chunk: int = CHUNK) -> PairLogps:
    """Each pair's summed log-probabilities of its chosen and rejected answer tokens, and their token counts."""
    pairs, _, width = batch["input_ids"].shape
    ids, labels = batch["input_ids"].view(2 * pairs, width), batch["labels"].view(2 * pairs, width)
    # sequence order: pair 0 chosen, pair 0 rejected, pair 1 chosen, ... (the view of [B, 2, L])
    final = {}

    def keep_final(module, args, out) -> None:
        final["hidden"] = out[0] if isinstance(out, tuple) else out.last_hidden_state

    hook = getattr(model, "module", model).get_decoder().register_forward_hook(keep_final)
    try:
        model(
            input_ids=ids,
            position_ids=batch["position_ids"].view(2 * pairs, width),
            use_cache=False,
            logits_to_keep=torch.zeros_like(ids, dtype=torch.bool),
        )  # no logits from the model itself: logps.py builds them by chunks
    finally:
        hook.remove()
    keep = labels[:, 1:] != IGNORE  # position t predicts token t + 1
    row = torch.arange(2 * pairs, device=ids.device)[:, None].expand(-1, width - 1)[keep]
    logp = token_logps(final["hidden"][:, :-1][keep], output_head(model), labels[:, 1:][keep], chunk)
    sums = sequence_sums(logp, row, 2 * pairs).view(pairs, 2)
    counts = keep.sum(1).view(pairs, 2).to(sums.dtype)
    return PairLogps(sums[:, 0], sums[:, 1], counts[:, 0], counts[:, 1])


class PreferenceSpec:
    """Spec for tunelab.training.fit: rows are pairs, units are pairs, the loss is the recipe's preference loss summed
    over pairs; the metrics' outputs are per-batch sums (metrics.py)."""

    def __init__(self, pad_id: int, loss: str, beta: float, gamma: float = 0.0, orpo_weight: float = 0.1,
                 sft_weight: float = 0.0):  # fmt: skip
        self.pad_id, self.loss, self.beta, self.gamma = pad_id, loss, beta, gamma
        self.orpo_weight, self.sft_weight = orpo_weight, sft_weight

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return collate_pairs(rows, self.pad_id)

    def units(self, batch: dict) -> int:
        return len(batch["input_ids"])

    def forward(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        policy = answer_logps(model, batch)
        reference = _reference(batch, policy)
        if NEEDS_REFERENCE[self.loss] and reference is None:
            raise ValueError(f"the {self.loss} loss needs reference log-probabilities in the rows (reference.py)")
        losses = pair_losses(self.loss, policy, reference, self.beta, self.gamma, self.orpo_weight, self.sft_weight)
        return PreferenceMetrics.batch_sums(policy, reference, self.beta), losses.sum()

    def new_metrics(self):
        return PreferenceMetrics()


def _reference(batch: dict, policy: PairLogps):
    if "reference" not in batch:
        return None
    ref = batch["reference"].to(policy.chosen.dtype)
    return PairLogps(ref[:, 0], ref[:, 1], policy.chosen_tokens, policy.rejected_tokens)
