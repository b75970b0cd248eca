"""Word-level data for token classification (NER): read, normalise tags to IOB2, split, tag space, encode, collate.

A record is one sentence: {"tokens": [words], "tags": [IOB2 tags], "line": first line, "source": file}.
Encoding turns a sentence into one or more windows of sub-tokens. Only the first sub-token of a word carries
its label (the rest are -100 unless `label_all_subtokens`), and each word is *owned* by exactly one window
(overlaps are split in the middle), so metrics see every word exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from tunelab.config import Config
from tunelab.data import IGNORE
from tunelab.data.builtin import load_builtin
from tunelab.data.conll import read_conll, tagged_sentence, warn_repaired
from tunelab.data.padding import attention_mask, pad
from tunelab.data.readers import read_table, record
from tunelab.data.splits import Splits, make_splits
from tunelab.data.tags import continuation, split_tag, tags_from_spans
from tunelab.errors import TunelabError, where

CONLL_SUFFIXES = {".conll", ".conll03", ".conllu", ".iob", ".iob2", ".bio", ".bioes", ".txt", ".tsv"}

# words of raw text (JSONL `text` + `entities`, and prediction): URLs, @mentions, #hashtags, a possessive 's split
# off ("Obama's" -> "Obama" "'s", as in WNUT/PTB), words with inner apostrophes or hyphens, any other symbol alone
WORD = re.compile(r"https?://\S+|www\.\S+|[@#]\w+|\w+(?=['’]s\b)|['’]s\b|\w+(?:['’-]\w+)*|[^\w\s]")


def words_with_offsets(text: str, cuts: tuple[int, ...] = ()) -> list[tuple[str, int, int]]:
    """(word, start, end) for each word of `text`; no word crosses a position in `cuts` (entity boundaries)."""
    bounds = sorted({0, len(text), *cuts})
    return [(m.group(), m.start(), m.end()) for a, b in zip(bounds, bounds[1:]) for m in WORD.finditer(text, a, b)]


# ------------------------------------------------------------------ the tag space


@dataclass
class TagSpace:
    """O plus B-/I- for every entity type, in a fixed order: the head's outputs."""

    types: list[str]

    @property
    def names(self) -> list[str]:
        return ["O"] + [f"{p}-{t}" for t in self.types for p in ("B", "I")]

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {v: k for k, v in enumerate(self.names)}

    @classmethod
    def from_run(cls, id2label: dict) -> "TagSpace":
        """The tag space stored in a run's run.json (keys are strings there)."""
        space = cls(sorted({split_tag(t)[1] for t in id2label.values() if t != "O"}))
        if [id2label[str(i)] for i in range(len(id2label))] != space.names:
            raise TunelabError(
                f"run.json labels {id2label} are not in tunelab's NER order (O, then B-/I- per sorted type)."
            )
        return space

    def check(self, records: list[dict], part: str) -> None:
        known = set(self.types)
        for r in records:
            unseen = [t for t in r["tags"] if t != "O" and split_tag(t)[1] not in known]
            if unseen:
                raise TunelabError(
                    f"{where(r.get('source', part), r.get('line'))}: entity type '{split_tag(unseen[0])[1]}' in the "
                    f"{part} data is not one "
                    f"the model knows ({', '.join(self.types)}). Remove or rename it."
                )


def build_tag_space(splits: Splits) -> TagSpace:
    """Every entity type of the data (a type only in validation/test still gets outputs, so it is scored)."""
    types = sorted(
        {
            split_tag(t)[1]
            for part in (splits.train, splits.validation, splits.test)
            for r in part
            for t in r["tags"]
            if t != "O"
        }
    )
    if not types:
        raise TunelabError(
            f"{splits.train[0].get('source', 'the data')}: no entities at all (every tag is O). Check the tag column "
            "and scheme."
        )
    return TagSpace(types)


# ------------------------------------------------------------------ reading


def read_sentences(cfg: Config, problems: Optional[list] = None, files: Optional[dict] = None) -> Splits:
    """Train/validation/test sentences with IOB2 tags; the built-in dataset when no file is given."""
    train, val, test = (files or read_files(cfg, problems)).values()
    return make_splits(train, val, test, cfg.data, _words)


def read_files(cfg: Config, problems: Optional[list] = None) -> dict[str, Optional[list[dict]]]:
    """Each file's sentences as given (the built-in dataset for train when no file is named; None where no file
    gives a split). With `problems` (tunelab doctor), bad rows and sentences are recorded there and skipped."""
    d = cfg.data
    if d.train is None:
        train, source = load_builtin(d.dataset, "tagged")
        for r in train:
            r["source"] = source
    else:
        train = read_tagged_file(d.train, cfg, problems)
    return {"train": train,
            "validation": read_tagged_file(d.validation, cfg, problems) if d.validation else None,
            "test": read_tagged_file(d.test, cfg, problems) if d.test else None}  # fmt: skip


def _words(r: dict) -> tuple:
    return tuple(r["tokens"])


def read_tagged_file(path: Path, cfg: Config, problems: Optional[list] = None) -> list[dict]:
    """CoNLL (by extension) or JSON(L) with tokens + tags, or with raw text + character-offset entities."""
    d = cfg.data
    path = Path(path)
    if path.suffix.lower() in CONLL_SUFFIXES:
        records = read_conll(path, d.tag_scheme, d.strict_tags, problems)
    else:
        table = read_table(path, problems)
        if d.tokens_column in table.columns:
            table.require(d.tags_column)
            make = _tagged_row
        elif d.text_column in table.columns and d.entities_column in table.columns:
            make = _entities_row
        else:
            raise TunelabError(
                f"{path}: ner data needs a '{d.tokens_column}' column with a '{d.tags_column}' column, or a "
                f"'{d.text_column}' column "
                f"with an '{d.entities_column}' column. The file has: {', '.join(map(repr, table.columns))}. "
                f"Name them with data.tokens_column / data.tags_column / data.text_column / data.entities_column."
            )
        records = []
        for row in table.rows:
            try:
                records.append(make(path, row.line, row.values, cfg))
            except TunelabError as e:
                if problems is None:
                    raise
                record(problems, e, "bad_tags")
    if not records and problems is None:
        raise TunelabError(f"{path}: no sentences. Give a file with at least a few tagged sentences.")
    warn_repaired(records, path)
    return records


def _tagged_row(path: Path, line: int, values: dict, cfg: Config) -> dict:
    d = cfg.data
    tokens, tags = values.get(d.tokens_column), values.get(d.tags_column)
    for name, value in ((d.tokens_column, tokens), (d.tags_column, tags)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TunelabError(f"{path}, line {line}: '{name}' must be a list of strings, got {type(value).__name__}.")
    if len(tokens) != len(tags):
        raise TunelabError(
            f"{path}, line {line}: {len(tokens)} tokens but {len(tags)} tags. Give exactly one tag per token."
        )
    return tagged_sentence(path, [line] * max(1, len(tokens)), tokens, tags, d.tag_scheme, d.strict_tags)


def _entities_row(path: Path, line: int, values: dict, cfg: Config) -> dict:
    """Raw text + [{start, end, type}] character spans -> words and IOB2 tags (words never cross an entity boundary)."""
    d = cfg.data
    text, entities = values.get(d.text_column), values.get(d.entities_column) or []
    if not isinstance(text, str) or not isinstance(entities, list):
        raise TunelabError(
            f"{path}, line {line}: '{d.text_column}' must be a string and '{d.entities_column}' a list of "
            f"{{start, end, type}}."
        )
    spans = []
    for e in entities:
        start, end, kind = (
            (e.get("start"), e.get("end"), e.get("type", e.get("label")))
            if isinstance(e, dict)
            else (list(e) + [None] * 3)[:3]
        )
        if not (
            isinstance(start, int)
            and isinstance(end, int)
            and 0 <= start < end <= len(text)
            and isinstance(kind, str)
            and kind
        ):
            raise TunelabError(
                f'{path}, line {line}: entity {e!r} is not {{"start": int, "end": int, "type": str}} with '
                f"0 <= start < end <= {len(text)} (the text's length)."
            )
        spans.append((start, end, kind))
    spans.sort()
    for (s1, e1, _), (s2, e2, _) in zip(spans, spans[1:]):
        if s2 < e1:
            raise TunelabError(
                f"{path}, line {line}: entities [{s1}, {e1}) and [{s2}, {e2}) overlap. NER tags one entity per word; "
                "remove one."
            )
    words = words_with_offsets(text, tuple(x for s, e, _ in spans for x in (s, e)))
    entity_words = []
    for s, e, kind in spans:
        inside = [i for i, (_, ws, we) in enumerate(words) if ws >= s and we <= e]
        if not inside:
            raise TunelabError(f"{path}, line {line}: entity {text[s:e]!r} [{s}, {e}) holds no word (only spaces?).")
        entity_words.append((kind, inside[0], inside[-1] + 1))
    tokens = [w for w, _, _ in words]
    return tagged_sentence(
        path, [line] * max(1, len(tokens)), tokens, tags_from_spans(len(tokens), entity_words), "IOB2", True
    )


# ------------------------------------------------------------------ encoding into windows


def encode(
    records: list[dict], space: TagSpace, tokenizer, max_length: int, stride: int, label_all: bool = False
) -> list[dict]:
    """Sentences -> rows of windows: input_ids, labels and word_pos (the sentence's word index at a word's first
    sub-token, in the window that owns it; -1 elsewhere), plus n_words and length (all windows' tokens)."""
    prefix, suffix = special_tokens(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise TunelabError(
            f"data.max_length ({max_length}) leaves no room for words after {len(prefix) + len(suffix)} special tokens."
        )
    stride = min(stride, budget // 2)  # windows must move forward
    label2id = space.label2id
    enc = tokenizer([r["tokens"] for r in records], is_split_into_words=True, add_special_tokens=False)
    rows = []
    for i, r in enumerate(records):
        pieces = word_pieces(enc["input_ids"][i], enc.word_ids(i), len(r["tokens"]), tokenizer.unk_token_id, budget)
        first = [label2id[t] for t in r["tags"]]  # a word's first sub-token
        rest = [label2id[continuation(t)] if label_all else IGNORE for t in r["tags"]]  # its other sub-tokens
        row = {"input_ids": [], "labels": [], "word_pos": [], "n_words": len(pieces)}
        for start, end, own_start, own_end in windows([len(p) for p in pieces], budget, stride):
            ids, labels, word_pos = list(prefix), [IGNORE] * len(prefix), [-1] * len(prefix)
            for w in range(start, end):
                n, owned = len(pieces[w]), own_start <= w < own_end
                ids += pieces[w]
                labels += [first[w]] + [rest[w]] * (n - 1) if owned else [IGNORE] * n
                word_pos += [w] + [-1] * (n - 1) if owned else [-1] * n
            row["input_ids"].append(ids + suffix)
            row["labels"].append(labels + [IGNORE] * len(suffix))
            row["word_pos"].append(word_pos + [-1] * len(suffix))
        row["length"] = sum(len(x) for x in row["input_ids"])
        rows.append(row)
    return rows


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one text (BERT: [CLS] and [SEP])."""
    content = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x")["input_ids"]
    i = next(i for i in range(len(full)) if full[i : i + len(content)] == content)
    return full[:i], full[i + len(content) :]


def word_pieces(ids: list[int], word_ids: list, n_words: int, unk_id: int, budget: int) -> list[list[int]]:
    """Sub-token ids per word. A word the tokenizer drops entirely (e.g. a lone control character) becomes [UNK],
    so every word gets a prediction; a word longer than a whole window keeps its first `budget` pieces."""
    pieces: list[list[int]] = [[] for _ in range(n_words)]
    for tok, w in zip(ids, word_ids):
        if w is not None:
            pieces[w].append(tok)
    return [p[:budget] if p else [unk_id] for p in pieces]


def windows(counts: list[int], budget: int, stride: int) -> list[tuple[int, int, int, int]]:
    """Split words with `counts` sub-tokens into windows of at most `budget` sub-tokens, consecutive windows
    sharing up to `stride` sub-tokens of whole words. Returns (start, end, own_start, own_end) word ranges; the
    owned ranges partition the sentence (each overlap is split in the middle)."""
    bounds, start, n = [], 0, len(counts)
    while True:
        end, used = start, 0
        while end < n and used + counts[end] <= budget:
            used, end = used + counts[end], end + 1
        bounds.append((start, end))
        if end == n:
            break
        # the next window starts as far back as the stride allows, leaving room for at least the word at `end`
        room, nxt, shared = min(stride, budget - counts[end]), end, 0
        while nxt - 1 > start and shared + counts[nxt - 1] <= room:
            nxt, shared = nxt - 1, shared + counts[nxt - 1]
        start = nxt
    cuts = [0] + [(bounds[k + 1][0] + bounds[k][1]) // 2 for k in range(len(bounds) - 1)] + [n]
    return [(s, e, cuts[k], cuts[k + 1]) for k, (s, e) in enumerate(bounds)]


def collate(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Sentences -> a batch of their windows, padded to the longest. `word_pos` becomes an index into the batch's
    words (sentences one after another); `word_sentence` says which sentence each of those words belongs to."""
    flat = [(k, r, w) for k, r in enumerate(rows) for w in range(len(r["input_ids"]))]
    windows_ = [r["input_ids"][w] for _, r, w in flat]
    ids, mask = pad(windows_, pad_id), attention_mask(windows_)
    labels = pad([r["labels"][w] for _, r, w in flat], IGNORE)
    offsets = [0] + torch.tensor([r["n_words"] for r in rows]).cumsum(0).tolist()
    # each window's word positions as indices into the batch's words (-1: not a word's first sub-token)
    word_pos = pad([[p + offsets[k] if p >= 0 else p for p in r["word_pos"][w]] for k, r, w in flat], -1)
    word_sentence = torch.repeat_interleave(torch.arange(len(rows)), torch.tensor([r["n_words"] for r in rows]))
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "word_pos": word_pos,
        "word_sentence": word_sentence,
    }
