"""Metrics shared by the task families' metrics classes and the reports built on them (each family's own metrics
live in its folder: tasks/classify/metrics.py, tasks/ner/metrics.py, tasks/lm/metrics.py).

    scalar.py  scalars(): the metrics of a dict that are one number
    plots.py   PNG plots: learning curves, confusion matrices, reliability diagrams
    text.py    generation metrics on text, 0–100: exact match and token F1 (SQuAD normalisation), ROUGE, BLEU, chrF,
               generated length (text_metrics; rouge-score and sacrebleu, imported when used)
"""

from tunelab.metrics.scalar import scalars

__all__ = ["scalars"]
