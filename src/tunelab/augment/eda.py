"""EDA (Wei & Zou, 2019, "EDA: Easy Data Augmentation Techniques for Boosting Performance on Text Classification"):
four operations on the words of a text, each copy made with one of them, in turn.

    synonym  replace n words (not stopwords, with a WordNet synonym) by a random synonym
    insert   insert a random synonym of a random word at a random position, n times
    swap     swap two random words, n times
    delete   delete each word with probability p (never every word)

n = max(1, round(rate x words)). Words are split on whitespace and keep their case and punctuation.
"""

from __future__ import annotations

import random

from tunelab.augment.wordnet import synonyms

# EDA's stopword list (the paper's code): never replaced, never the source of an insertion
STOPWORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she
her hers herself it its itself they them their theirs themselves what which who whom this that these those am is are
was were be been being have has had having do does did doing a an the and but if or because as until while of at by
for with about against between into through during before after above below to from up down in out on off over under
again further then once here there when where why how all any both each few more most other some such no nor not only
own same so than too very s t can will just don should now""".split()
)


def _bare(word: str) -> str:
    return word.strip(".,;:!?\"'()[]{}").lower()


def _has_synonyms(word: str) -> bool:
    bare = _bare(word)
    return bool(bare) and bare not in STOPWORDS and bool(synonyms(bare))


def synonym(words: list[str], rate: float, rng: random.Random) -> list[str]:
    out = list(words)
    candidates = [i for i, w in enumerate(out) if _has_synonyms(w)]
    rng.shuffle(candidates)
    for i in candidates[: max(1, round(rate * len(words)))]:
        out[i] = rng.choice(synonyms(_bare(out[i])))
    return out


def insert(words: list[str], rate: float, rng: random.Random) -> list[str]:
    out = list(words)
    sources = [w for w in words if _has_synonyms(w)]
    if not sources:
        return out
    for _ in range(max(1, round(rate * len(words)))):
        out.insert(rng.randrange(len(out) + 1), rng.choice(synonyms(_bare(rng.choice(sources)))))
    return out


def swap(words: list[str], rate: float, rng: random.Random) -> list[str]:
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(max(1, round(rate * len(words)))):
        i, j = rng.sample(range(len(out)), 2)
        out[i], out[j] = out[j], out[i]
    return out


def delete(words: list[str], rate: float, rng: random.Random) -> list[str]:
    kept = [w for w in words if rng.random() >= rate]
    return kept or [rng.choice(words)]  # a deletion never empties a text


OPERATIONS = {"synonym": synonym, "insert": insert, "swap": swap, "delete": delete}


def eda(text: str, operation: str, rate: float, rng: random.Random) -> str:
    words = text.split()
    return " ".join(OPERATIONS[operation](words, rate, rng)) if words else text
