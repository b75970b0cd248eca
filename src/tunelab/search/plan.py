"""Plan: a recipe with a search: block, checked before the first trial (the space, the metric and its direction, the
study directory) and split into the base recipe every trial starts from and what every trial pins."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tunelab.config import Config, load_config
from tunelab.errors import TunelabError
from tunelab.runs.index import runs_dir
from tunelab.search.space import Space, check_metric, parse_space


@dataclass
class Plan:
    """A search, checked: the base recipe (without its search block), the space, and the metric and direction."""

    cfg: Config  # the whole recipe, search block included
    base: dict  # the recipe every trial starts from
    space: Space
    metric: str
    direction: str  # maximize | minimize
    dir: Path
    trials: int
    timeout: Optional[float]

    @classmethod
    def make(cls, recipe, study_dir=None, trials=None, timeout=None) -> "Plan":
        source = str(recipe) if isinstance(recipe, (str, Path)) else "the recipe"
        cfg = load_config(recipe)
        if cfg.search is None:
            raise TunelabError(
                f"{source}: no search: block. Add one naming the fields to search, e.g.\n"
                "search:\n  trials: 16\n  space:\n    optim.lr: {float: [1.0e-5, 3.0e-4], log: true}"
            )
        space = parse_space(cfg, source)
        metric, direction = check_metric(cfg, source)
        base = cfg.dump()
        base.pop("search")
        name = Path(recipe).stem if isinstance(recipe, (str, Path)) else cfg.task
        study_dir = Path(study_dir) if study_dir else runs_dir() / f"tune-{name}"
        return cls(cfg, base, space, metric, direction, study_dir, trials or cfg.search.trials,
                   timeout or cfg.search.timeout)  # fmt: skip

    def fixed(self, threads: int) -> dict:
        """What every trial's recipe pins, so best.yaml reproduces it anywhere: threads, the resolved precision, and
        the search metric as the metric that picks each trial's best checkpoint."""
        import torch

        from tunelab.training.devices import pick_device
        from tunelab.training.precision import resolve

        device = torch.device(pick_device(self.cfg.train.device))
        return {
            "train.num_threads": threads,
            "train.precision": resolve(self.cfg.train.precision, device),
            "eval.metric": self.metric,
            "eval.mode": "max" if self.direction == "maximize" else "min",
        }
