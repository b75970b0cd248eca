"""Text augmentation of the training split (`data.augment`), for the classification family: after the split, never
on validation, test or a held-out fold. Each training example gets `copies` new ones with its label, in order after
it; copy k of example i is a pure function of (data.split_seed, i, k), so the same recipe augments the same way.

    apply.py       augment(): the records, each followed by its copies, by the method the recipe names
    eda.py         eda: synonym replacement, random insertion, swap, deletion (synonyms from WordNet 3.0, wordnet.py)
    aeda.py        aeda: punctuation marks inserted between the words
    paraphrase.py  paraphrase: rewritten by a causal LM, generated once and cached
"""

from tunelab.lazy import exports

__all__ = ["augment"]
# lazy: apply.py imports torch (through paraphrase.py); eda.py or aeda.py alone stay light
__getattr__, __dir__ = exports(__name__, {"augment": "apply"})
