"""Recommendations that follow from the findings: each a recipe field to set and why."""

from __future__ import annotations

import numpy as np

from tunelab.config import Config
from tunelab.doctor.checks import Finding
from tunelab.doctor.lengths import TRUNCATED, keeping_length


def recommend(
    cfg: Config, splits: dict[str, list[dict]], findings: list[Finding], lengths: np.ndarray, truncates: bool = True
) -> list[dict]:
    """`truncates`: data.max_length cuts a longer example's end off (not: it windows or pieces it, losing nothing)."""
    found = {f.check for f in findings if f.severity != "info" or f.check != "conflicting_labels"}
    n = len(splits["train"])
    out = []
    if cfg.method.name == "full" and n < 500:
        out.append(
            {
                "set": "method.name: lora (or frozen with method.unfreeze_top_layers: 2)",
                "why": f"{n} training examples are few for updating every weight of the model: fewer trainable "
                "parameters overfit less and train faster.",
            }
        )
    elif cfg.method.name == "frozen" and n >= 20000:
        out.append(
            {
                "set": "method.name: full",
                "why": f"with {n} training examples, updating the whole encoder "
                "usually beats a frozen one, if the time allows.",
            }
        )
    if len(lengths) and truncates:
        p99 = int(np.percentile(lengths, 99))
        fit = keeping_length(lengths, 0.99)
        truncated = float((lengths > cfg.data.max_length).mean())
        if truncated > TRUNCATED:
            out.append(
                {
                    "set": f"data.max_length: {fit}",
                    "why": f"{truncated:.0%} of the training texts are longer "
                    f"than {cfg.data.max_length} tokens now; {fit} keeps 99% whole (longer is slower).",
                }
            )
        elif cfg.data.max_length > 1.5 * fit and fit >= 8:
            out.append(
                {
                    "set": f"data.max_length: {fit}",
                    "why": f"99% of the texts fit in {p99} tokens; a shorter "
                    "cap truncates almost nothing and bounds the longest batches.",
                }
            )
    weights_apply = "class_weights" in cfg.dump(relevant_only=True)["train"]  # the recipe field applies to the task
    if "imbalance" in found and cfg.train.class_weights == "none" and weights_apply:
        out.append(
            {
                "set": "train.class_weights: balanced",
                "why": "the labels are imbalanced: weighting the loss by "
                "inverse frequency keeps the rare labels from being ignored.",
            }
        )
    if "duplicates" in found and not cfg.data.dedupe:
        out.append(
            {
                "set": "data.dedupe: true",
                "why": "the data repeats texts: deduplicated, none counts twice or lands on both sides of a split.",
            }
        )
    if {"leakage", "near_duplicates"} & found:
        out.append(
            {
                "set": "remove the rows listed under leakage / near_duplicates in doctor.json from validation or test",
                "why": "held-out texts that training has seen (or nearly) make the scores optimistic.",
            }
        )
    if "conflicting_labels" in found:
        out.append(
            {
                "set": "fix the labels listed under conflicting_labels",
                "why": "one text with two labels is noise the model is trained to be unsure about.",
            }
        )
    return out
