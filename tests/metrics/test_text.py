"""tunelab.metrics.text: hand-computed values on a few sentences; equal to rouge-score and sacrebleu called directly."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF

from tunelab.metrics.text import (
    ROUGE,
    contains_answer,
    exact_match,
    normalize_answer,
    sentences,
    text_metrics,
    token_f1,
)

PREDICTIONS = [
    "The cat sat on the mat. It was happy!",
    "Paris is the capital of France.",
    "I am a robot. I like running and jumps? Yes.",
    "Nothing in common here",
]
REFERENCES = [
    "A cat sat on a mat. It was glad.",
    "The capital of France is Paris.",
    "I am a robot! I liked to run and jumped.",
    "Completely different words",
]


@pytest.mark.parametrize(
    "text, normalised",
    [
        ("The Cat!", "cat"),
        ("  an apple,  a pear and THE  plum. ", "apple pear and plum"),
        ("Don't stop", "dont stop"),  # punctuation is removed, not replaced by a space (SQuAD)
        ("end-to-end", "endtoend"),
        ("theatre another", "theatre another"),  # articles only as whole words
        ("", ""),
    ],
)
def test_squad_normalisation(text, normalised):
    assert normalize_answer(text) == normalised


def test_exact_match_and_token_f1_by_hand():
    assert exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert exact_match("Eiffel Tower in Paris", "Eiffel Tower") == 0.0
    # "eiffel tower in paris" vs "eiffel tower": 2 shared tokens, precision 2/4, recall 2/2 -> F1 2/3
    assert token_f1("Eiffel Tower in Paris", "the Eiffel Tower") == pytest.approx(2 / 3)
    # multiplicity counts: "b" vs "b b" shares 1 token of 1 and of 2 -> P 1, R 1/2, F1 2/3
    assert token_f1("b", "b b") == pytest.approx(2 / 3)
    assert token_f1("x y", "z") == 0.0
    assert token_f1("The", "a") == 1.0 and token_f1("the", "cat") == 0.0  # both empty: equal; one empty: 0
    assert contains_answer("It is Paris, France.", "paris") == 1.0
    assert contains_answer("Lyon", "Paris") == 0.0 and contains_answer("anything", "the") == 0.0


def test_corpus_means_on_the_0_to_100_scale():
    m = text_metrics(["The Eiffel Tower.", "Eiffel Tower in Paris"], ["eiffel tower", "the Eiffel Tower"], ("em", "f1"))
    assert m == {"exact_match": pytest.approx(50.0), "token_f1": pytest.approx(100 * (1 + 2 / 3) / 2)}


def test_rouge1_by_hand():
    # stemmed tokens: "the cat sat on the mat it was happi" / "a cat sat on a mat it was glad": 6 shared of 9 and 9
    m = text_metrics(PREDICTIONS[:1], REFERENCES[:1], which=("rouge1", "rouge2"))
    assert set(m) == {"rouge1", "rouge2"}
    assert m["rouge1"] == pytest.approx(100 * 6 / 9)
    # bigrams: 8 each; shared "cat sat", "sat on", "mat it", "it was" -> 4 of 8
    assert m["rouge2"] == pytest.approx(50.0)
    # stemming: "running" / "run", "jumps" / "jumped" meet
    assert text_metrics(["running jumps"], ["run jumped"], which=("rouge1",))["rouge1"] == pytest.approx(100.0)


def test_rouge_equals_rouge_score_called_directly():
    m = text_metrics(PREDICTIONS, REFERENCES, which=("rouge",))
    scorer = rouge_scorer.RougeScorer(list(ROUGE), use_stemmer=True)
    for t in ("rouge1", "rouge2", "rougeL"):  # the raw texts: newlines are white space to these three
        direct = [scorer.score(r, p)[t].fmeasure for p, r in zip(PREDICTIONS, REFERENCES)]
        assert m[t] == pytest.approx(100 * sum(direct) / len(direct)), t
    lsum = [scorer.score(sentences(r), sentences(p))["rougeLsum"].fmeasure for p, r in zip(PREDICTIONS, REFERENCES)]
    assert m["rougeLsum"] == pytest.approx(100 * sum(lsum) / len(lsum))
    # the splitter did its work: one sentence a line, and Lsum differs from L on a multi-sentence pair (sentences
    # swapped: the longest common subsequence of the whole texts is 2 of 4 tokens, each sentence's own is 2 of 2)
    assert sentences("I am a robot. I like running and jumps? Yes.") == "I am a robot.\nI like running and jumps?\nYes."
    one = text_metrics(["Dogs bark. Cats sleep."], ["Cats sleep. Dogs bark."], which=("rougeL", "rougeLsum"))
    assert one["rougeL"] == pytest.approx(50.0) and one["rougeLsum"] == pytest.approx(100.0)


def test_bleu_and_chrf_equal_sacrebleu_called_directly():
    m = text_metrics(PREDICTIONS, REFERENCES, which=("bleu", "chrf"))
    bleu, chrf = BLEU(), CHRF()
    assert m["bleu"] == pytest.approx(bleu.corpus_score(PREDICTIONS, [REFERENCES]).score)
    assert m["chrf"] == pytest.approx(chrf.corpus_score(PREDICTIONS, [REFERENCES]).score)
    assert m["bleu_signature"] == str(bleu.get_signature()) and "tok:13a" in m["bleu_signature"]
    assert m["chrf_signature"] == str(chrf.get_signature()) and m["chrf_signature"].startswith("nrefs:1|")
    assert 0 < m["bleu"] < 100 and 0 < m["chrf"] < 100


def test_identical_corpus_scores_100():
    m = text_metrics(PREDICTIONS, PREDICTIONS)
    for k in ("exact_match", "token_f1", *ROUGE, "bleu", "chrf"):
        assert m[k] == pytest.approx(100.0), k


@pytest.mark.parametrize("tokenize", ["char", "zh", "intl"])
def test_bleu_tokenisations(tokenize):
    zh = ["我们今天去北京看长城。", "他喜欢喝绿茶和咖啡。"]
    ref = ["我们明天去北京看长城。", "她喜欢喝红茶和咖啡。"]
    m = text_metrics(zh, ref, which=("bleu",), bleu_tokenize=tokenize)
    direct = BLEU(tokenize=tokenize)
    assert m["bleu"] == pytest.approx(direct.corpus_score(zh, [ref]).score)
    assert f"tok:{tokenize}" in m["bleu_signature"]
    if tokenize != "intl":  # characters as tokens: Chinese without spaces has n-grams (intl: one token a sentence)
        assert 0 < m["bleu"] < 100
        assert text_metrics(zh, zh, which=("bleu",), bleu_tokenize=tokenize)["bleu"] == pytest.approx(100.0)


def test_lengths_and_hit_max():
    m = text_metrics(["a", "b", "c", "d"], ["a", "b", "c", "d"], which=(), lengths=[3, 8, 8, 5], max_new_tokens=8)
    assert m == {"gen_length": 6.0, "hit_max": 50.0}
    assert text_metrics(["a"], ["a"], which=(), lengths=[2]) == {"gen_length": 2.0}
    with pytest.raises(ValueError, match="lengths"):
        text_metrics(["a"], ["a"], which=(), lengths=[1, 2])


def test_errors_and_the_empty_corpus():
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        text_metrics(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="unknown text metrics"):
        text_metrics(["a"], ["a"], which=("meteor",))
    m = text_metrics([], [], lengths=[], max_new_tokens=4)
    assert all(v == 0.0 for k, v in m.items() if not k.endswith("signature"))


def test_the_module_imports_neither_scorer():
    import subprocess
    import sys

    code = "import sys, tunelab.metrics.text; print('rouge_score' in sys.modules, 'sacrebleu' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == [
        "False",
        "False",
    ]
