"""Generation metrics on text, on the 0–100 scale papers report (one module for every generative family).

    exact_match, token_f1   SQuAD: answers compared after normalize_answer (lower case, no punctuation, no articles,
                            single spaces); token_f1 is the bag-of-tokens F1 of the normalised answers
    contains_answer         the normalised reference occurs in the normalised prediction
    rouge1 … rougeLsum      rouge-score's F-measure with Porter stemming; rougeLsum on sentences split by a regex
                            (nltk's punkt is not available offline). rouge-score's tokenizer keeps [a-z0-9] only, so
                            ROUGE is for English text
    bleu, chrf              sacrebleu corpus scores (BLEU's default 13a tokenisation unless `bleu_tokenize`: zh, char,
                            intl, ...), with their signature strings (`bleu_signature`, `chrf_signature`)
    gen_length, hit_max     mean generated tokens and the share (in %) of outputs that reached `max_new_tokens`

rouge-score and sacrebleu are imported when a score needs them, not when this module is.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Optional

ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")
WHICH = ("em", "f1", "contains", "rouge", *ROUGE, "bleu", "chrf")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, punctuation removed, the articles a/an/the removed, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised answers are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's token F1 (0–1): the overlap of the normalised answers' tokens, counted with multiplicity."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def contains_answer(prediction: str, reference: str) -> float:
    """1.0 when the normalised reference is non-empty and occurs in the normalised prediction."""
    ref = normalize_answer(reference)
    return float(bool(ref) and ref in normalize_answer(prediction))


def sentences(text: str) -> str:
    """One sentence a line (what rougeLsum reads): split after . ! ? followed by white space."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


def rouge(predictions: Sequence[str], references: Sequence[str], types: Iterable[str] = ROUGE) -> dict:
    """Mean ROUGE F-measure × 100 per type (stemming on; rougeLsum over regex-split sentences)."""
    from rouge_score import rouge_scorer

    types = list(types)
    scorer = rouge_scorer.RougeScorer(types, use_stemmer=True)
    totals = dict.fromkeys(types, 0.0)
    for p, r in zip(predictions, references):
        for t, score in scorer.score(sentences(r), sentences(p)).items():  # newlines are plain spaces to the others
            totals[t] += score.fmeasure
    n = len(predictions)
    return {t: 100 * v / n if n else 0.0 for t, v in totals.items()}


def bleu(predictions: Sequence[str], references: Sequence[str], tokenize: Optional[str] = None) -> tuple[float, str]:
    """sacrebleu's corpus BLEU (one reference a prediction) and its signature."""
    from sacrebleu.metrics import BLEU

    metric = BLEU() if tokenize is None else BLEU(tokenize=tokenize)
    return _corpus(metric, predictions, references)


def chrf(predictions: Sequence[str], references: Sequence[str]) -> tuple[float, str]:
    """sacrebleu's corpus chrF (one reference a prediction) and its signature."""
    from sacrebleu.metrics import CHRF

    return _corpus(CHRF(), predictions, references)


def _corpus(metric, predictions: Sequence[str], references: Sequence[str]) -> tuple[float, str]:
    """A sacrebleu corpus score and the metric's signature (0.0 and no signature for no predictions: sacrebleu's
    signature needs a scored corpus)."""
    if not predictions:
        return 0.0, ""
    return metric.corpus_score(list(predictions), [list(references)]).score, str(metric.get_signature())


def text_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    which: Iterable[str] = ("em", "f1", "rouge", "bleu", "chrf"),
    bleu_tokenize: Optional[str] = None,
    lengths: Optional[Sequence[int]] = None,
    max_new_tokens: Optional[int] = None,
) -> dict:
    """The asked-for metrics of predictions against their references, each 0–100 (gen_length: tokens).

    which: em (exact_match), f1 (token_f1), contains (contains_answer), rouge (the four ROUGE types) or one of them,
    bleu, chrf. lengths: generated tokens per prediction (gen_length); with max_new_tokens also hit_max."""
    predictions, references, which = list(predictions), list(references), list(which)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    unknown = [w for w in which if w not in WHICH]
    if unknown:
        raise ValueError(f"unknown text metrics {unknown}; known: {', '.join(WHICH)}")
    n, out = len(predictions), {}
    mean = lambda f: 100 * sum(f(p, r) for p, r in zip(predictions, references)) / n if n else 0.0  # noqa: E731
    for key, name, f in (
        ("em", "exact_match", exact_match),
        ("f1", "token_f1", token_f1),
        ("contains", "contains_answer", contains_answer),
    ):
        if key in which:
            out[name] = mean(f)
    types = [t for t in ROUGE if t in which or "rouge" in which]
    if types:
        out |= rouge(predictions, references, types)
    if "bleu" in which:
        out["bleu"], out["bleu_signature"] = bleu(predictions, references, bleu_tokenize)
    if "chrf" in which:
        out["chrf"], out["chrf_signature"] = chrf(predictions, references)
    if lengths is not None:
        lengths = list(lengths)
        if len(lengths) != n:
            raise ValueError(f"{len(lengths)} lengths for {n} predictions")
        out["gen_length"] = sum(lengths) / n if n else 0.0
        if max_new_tokens is not None:
            out["hit_max"] = 100 * sum(k >= max_new_tokens for k in lengths) / n if n else 0.0
    return out
