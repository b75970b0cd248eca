"""Near-duplicates across splits: texts normalised (NFKC, lower case, punctuation removed, whitespace collapsed), cut
into character 5-grams, and compared by Jaccard similarity of those sets; MinHash with LSH banding finds the candidate
pairs, the exact Jaccard of their 5-gram sets confirms them.

Written here in numpy rather than with datasketch: its per-document MinHash and LSH insertion took 26 s for 100,000
short texts on this project's 2-core CPU, over the whole doctor's 30 s budget; hashing every 5-gram of every text at
once, then one vectorised min per document and permutation, takes about a tenth of that.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Sequence

import numpy as np

SHINGLE = 5
THRESHOLD = 0.8
PERMUTATIONS, BANDS = 64, 16  # 16 bands of 4: a pair at Jaccard 0.8 is a candidate with probability 0.9998
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC, lower case, punctuation (Unicode category P) removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_punctuation())
    return _SPACE.sub(" ", text).strip()


_TABLE: dict = {}


def _punctuation() -> dict:
    if not _TABLE:  # every punctuation code point of the first planes, once (str.translate is C-speed)
        _TABLE.update({c: None for c in range(0x30000) if unicodedata.category(chr(c)).startswith("P")})
    return _TABLE


def shingle_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, starts): the 64-bit hash of every character 5-gram of every text, text after text, and where each
    text's run begins (a text shorter than 5 characters, padded, is one shingle: itself)."""
    texts = [t if len(t) >= SHINGLE else t.ljust(SHINGLE, "\0") for t in texts]
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = len(codes)
    with np.errstate(over="ignore"):  # polynomial hash of each window, modulo 2^64
        h = np.zeros(max(n - SHINGLE + 1, 0), dtype=np.uint64)
        for k in range(SHINGLE):
            h = h * np.uint64(1_000_003) + codes[k : n - SHINGLE + 1 + k]
        h = _mix(h)
    windows = lengths - SHINGLE + 1  # the windows that start and end inside each text
    starts = np.concatenate([[0], np.cumsum(windows)[:-1]]) if len(texts) else np.zeros(0, dtype=np.int64)
    begin = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(texts) else np.zeros(0, dtype=np.int64)
    keep = np.repeat(begin - starts, windows) + np.arange(int(windows.sum()))  # each window's position in `h`
    return h[keep], starts


def minhash(hashes: np.ndarray, starts: np.ndarray, seed: int = 0) -> np.ndarray:
    """(texts, PERMUTATIONS) signatures: per permutation x -> a*x + b (mod 2^64, a odd: a bijection on the already
    mixed hashes), each text's minimum."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=PERMUTATIONS, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=PERMUTATIONS, dtype=np.uint64)
    out = np.empty((len(starts), PERMUTATIONS), dtype=np.uint64)
    if not len(hashes):
        return out
    with np.errstate(over="ignore"):
        for k in range(PERMUTATIONS):
            out[:, k] = np.minimum.reduceat(hashes * a[k] + b[k], starts)
    return out


def candidates(signatures: np.ndarray, group: np.ndarray) -> set[tuple[int, int]]:
    """Pairs (i < j) of texts of different groups (splits) that share a band of their signatures."""
    rows = PERMUTATIONS // BANDS
    pairs: set[tuple[int, int]] = set()
    with np.errstate(over="ignore"):
        for band in range(BANDS):
            key = np.zeros(len(signatures), dtype=np.uint64)
            for r in range(rows):
                key = _mix(key * np.uint64(0x9E3779B97F4A7C15) + signatures[:, band * rows + r])
            order = np.argsort(key, kind="stable")
            sorted_key = key[order]
            same = sorted_key[1:] == sorted_key[:-1]  # only the buckets of two or more texts are looked at
            if not same.any():
                continue
            first = np.flatnonzero(same & np.concatenate([[True], ~same[:-1]]))
            for f in first.tolist():
                last = f + 1
                while last + 1 < len(sorted_key) and sorted_key[last + 1] == sorted_key[f]:
                    last += 1
                bucket = order[f : last + 1]
                if len(set(group[bucket].tolist())) < 2:
                    continue
                members = sorted(bucket.tolist())[:200]  # a bucket this large is one text repeated: 200 show it
                for x, i in enumerate(members):
                    for j in members[x + 1 :]:
                        if group[i] != group[j]:
                            pairs.add((i, j))
    return pairs


def near_duplicates(texts_by_split: dict[str, list[str]], threshold: float = THRESHOLD) -> list[dict]:
    """Every pair of texts from two different splits whose normalised 5-gram Jaccard similarity is >= threshold, and
    that are not the very same text (those are exact duplicates): {"a": (split, index), "b": ..., "similarity"}."""
    names = list(texts_by_split)
    raw = [t for name in names for t in texts_by_split[name]]
    split_of = np.repeat(np.arange(len(names)), [len(texts_by_split[n]) for n in names])
    index_in = np.concatenate([np.arange(len(texts_by_split[n])) for n in names]) if raw else np.zeros(0, dtype=int)
    if len(names) < 2 or not raw:
        return []
    # texts with the same normalised form are compared once (a text repeated 1,000 times is one text here)
    norm = [normalise(t) for t in raw]
    unique, inverse = np.unique(np.array(norm, dtype=object), return_inverse=True)
    inverse = inverse.reshape(-1)
    members: dict[int, list[int]] = {}
    for i, u in enumerate(inverse.tolist()):
        members.setdefault(u, []).append(i)
    splits_of_unique = [sorted({int(split_of[i]) for i in members[u]}) for u in range(len(unique))]

    found: dict[tuple[int, int], float] = {}

    def add(i: int, j: int, similarity: float) -> None:
        if split_of[i] != split_of[j] and raw[i] != raw[j]:
            key = (min(i, j), max(i, j))
            found[key] = max(found.get(key, 0.0), similarity)

    for u in range(len(unique)):  # one normalised form in two splits: similarity 1 (case, punctuation, spacing)
        if len(splits_of_unique[u]) > 1:
            ids = members[u][:200]
            for x, i in enumerate(ids):
                for j in ids[x + 1 :]:
                    add(i, j, 1.0)
    hashes, starts = shingle_hashes(list(unique))
    # a normalised form in several splits counts as each of them: its group is a set, candidates need two groups
    group = np.array([s[0] if len(s) == 1 else -1 - u for u, s in enumerate(splits_of_unique)])
    for u, v in candidates(minhash(hashes, starts), group):
        similarity = _jaccard(unique[u], unique[v])
        if similarity >= threshold:
            for i in members[u][:200]:
                for j in members[v][:200]:
                    add(i, j, similarity)
    return [{"a": (names[split_of[i]], int(index_in[i])), "b": (names[split_of[j]], int(index_in[j])),
             "similarity": round(s, 4)} for (i, j), s in sorted(found.items())]  # fmt: skip


def _jaccard(x: str, y: str) -> float:
    a, b = _grams(x), _grams(y)
    return len(a & b) / max(len(a | b), 1)


def _grams(text: str) -> set[str]:
    return {text[i : i + SHINGLE] for i in range(len(text) - SHINGLE + 1)} or {text}


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit (uint64, wrapping)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
