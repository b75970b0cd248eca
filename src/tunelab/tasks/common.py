"""Small pieces every task story uses: which metric picks the best checkpoint, and what run.json records."""

from __future__ import annotations

import hashlib

from tunelab.config import Config
from tunelab.errors import TunelabError


def selection_metric(cfg: Config, spec, default: str) -> tuple[str, bool]:
    """(metric, higher_is_better) from eval.metric/eval.mode; `default` when the recipe says auto."""
    metric = default if cfg.eval.metric == "auto" else cfg.eval.metric
    known = spec.new_metrics().higher_is_better
    if metric not in known and metric != "loss":
        raise TunelabError(
            f"eval.metric '{metric}' is not a metric of task '{cfg.task}'. Choose one of: {', '.join(known)}."
        )
    higher = known.get(metric, False) if cfg.eval.mode == "auto" else cfg.eval.mode == "max"
    return metric, higher


def check_same_data(run, fingerprint: str, resume: bool) -> None:
    """Resume refuses data other than the data the run started with."""
    before = run.info.get("data", {}).get("fingerprint")
    if resume and before not in (None, fingerprint):
        raise TunelabError(
            f"{run.path}: the data changed since this run started (fingerprint {before} -> {fingerprint}). "
            f"Resume only with the same data, or start a new run."
        )


def tokenizer_id(tokenizer, source) -> str:
    return hashlib.sha256(
        f"{source.location}|{source.gguf_file}|{type(tokenizer).__name__}|{len(tokenizer)}".encode()
    ).hexdigest()[:12]


def versions() -> dict:
    import peft
    import torch
    import transformers

    import tunelab

    return {
        "tunelab": tunelab.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }
