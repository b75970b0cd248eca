"""The text-to-text metrics: perplexity of the targets (streamed, like the lm family's) during the loss pass, and the
generation metrics (tunelab.metrics.text, 0–100) of generated outputs, which the spec adds at each validation."""

from __future__ import annotations

from tunelab.metrics.text import text_metrics
from tunelab.tasks.lm.metrics import PerplexityMetrics

GENERATED = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf", "exact_match", "token_f1")


class Text2TextMetrics(PerplexityMetrics):
    """Perplexity as the lm family streams it; `higher_is_better` also names the generation metrics, so any of them
    may pick the best checkpoint (eval.metric)."""

    higher_is_better = PerplexityMetrics.higher_is_better | {name: True for name in GENERATED} | {"gen_length": True}


def score(
    predictions: list[str], references: list[str], lengths: list[int], max_new_tokens: int, bleu_tokenize=None
) -> dict:
    """Every generation metric of predictions against references (0–100; gen_length in tokens; hit_max: the share
    of outputs cut at max_new_tokens), with the sacrebleu signatures, and how many were generated."""
    m = text_metrics(
        predictions,
        references,
        which=("em", "f1", "rouge", "bleu", "chrf"),
        bleu_tokenize=bleu_tokenize,
        lengths=lengths,
        max_new_tokens=max_new_tokens,
    )
    return m | {"generated": len(predictions)}
