"""Early stopping on a validation metric. Works alone: it always records the best step and value."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional


@dataclass
class EarlyStopper:
    metric: str
    higher_is_better: bool
    patience: Optional[int] = None  # None: never stop early, still track the best
    best: Optional[float] = None
    best_step: Optional[int] = None
    bad_evals: int = 0

    def update(self, value: float, step: int) -> bool:
        """Record a validation result; True when it is the best so far."""
        improved = self.best is None or (value > self.best if self.higher_is_better else value < self.best)
        if improved:
            self.best, self.best_step, self.bad_evals = value, step, 0
        else:
            self.bad_evals += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_evals >= self.patience

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
