"""The sequence-level spec, as the training loop sees it: collate, loss units, forward (logits, summed loss), metrics;
and class weights."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from tunelab.tasks.classify.data import collate
from tunelab.tasks.classify.metrics import metrics_for


class SequenceClassification:
    """One prediction per text: single-label (softmax + CE), multilabel (sigmoid + BCE) or regression (MSE).

    The loss is summed over examples; the loop divides by the examples of the whole optimizer step.
    """

    def __init__(
        self,
        task: str,
        names: list[str],
        pad_id: int,
        class_weights: Optional[torch.Tensor] = None,
        threshold: float = 0.5,
    ):
        self.task, self.names, self.pad_id, self.threshold = task, names, pad_id, threshold
        self.class_weights = class_weights

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        return collate(rows, self.pad_id, self.task)

    def units(self, batch: dict) -> int:
        return len(batch["labels"])

    def logits(self, model, batch: dict) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return model(**inputs).logits

    def forward(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.logits(model, batch).float()
        labels = batch["labels"]
        if self.task == "regression":
            loss = F.mse_loss(logits.squeeze(-1), labels, reduction="sum")
        elif self.task == "multilabel":
            loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(-1).sum()
        else:
            weight = self.class_weights.to(logits.device) if self.class_weights is not None else None
            loss = F.cross_entropy(logits, labels, weight=weight, reduction="sum")
        return logits, loss

    def new_metrics(self):
        return metrics_for(self.task, self.names, self.threshold)


def class_weights(option, labels: list[int], num_classes: int) -> Optional[torch.Tensor]:
    """'none' -> None; 'balanced' -> n / (k * count_c); a list -> as given."""
    if option == "none":
        return None
    if option == "balanced":
        counts = torch.bincount(torch.as_tensor(labels), minlength=num_classes).float()
        return len(labels) / (num_classes * counts.clamp(min=1))
    return torch.tensor(option, dtype=torch.float)
