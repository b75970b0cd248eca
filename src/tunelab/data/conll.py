"""CoNLL files and tagged sentences: one `token ... tag` line per word, tags checked against their scheme and turned
into IOB2 (a reader, like data/readers.py: file and line in every error; the ner family and the built-in WNUT-16
data set both read with it)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

from tunelab.data.readers import read_utf8, record, report
from tunelab.data.tags import expected_tags, invalid_tag, repair, to_iob2
from tunelab.errors import TunelabError


def read_conll(path: Path, scheme: str = "IOB2", strict: bool = False, problems: Optional[list] = None) -> list[dict]:
    """CoNLL: one `token ... tag` line per word (2-column, or 4-column CoNLL-2003: the tag is the last column),
    a blank line between sentences, -DOCSTART- lines skipped. With `problems` (tunelab doctor), a bad line or
    sentence is recorded there and skipped."""
    path = Path(path)
    if not path.exists():
        raise TunelabError(f"{path}: file not found. Check the path (relative paths start from {Path.cwd()}).")
    lines = read_utf8(path, problems).splitlines()
    records, tokens, tags, line_nos = [], [], [], []

    def close():
        if tokens:
            try:
                records.append(tagged_sentence(path, line_nos, list(tokens), list(tags), scheme, strict))
            except TunelabError as e:
                if problems is None:
                    raise
                record(problems, e, "bad_tags")
            tokens.clear(), tags.clear(), line_nos.clear()

    for i, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            close()
        elif fields[0] == "-DOCSTART-":
            close()
        elif len(fields) < 2:
            report(problems, "malformed_row", path, i, f"'{line.strip()}' has no tag column. Each word line is "
                   "`token<TAB>tag` (or the 4 columns of CoNLL-2003), a blank line between sentences.")  # fmt: skip
        else:
            tokens.append(fields[0]), tags.append(fields[-1]), line_nos.append(i)
    close()
    return records


def tagged_sentence(
    path: Path, lines: list[int], tokens: list[str], tags: list[str], scheme: str, strict: bool
) -> dict:
    """Check one sentence's tags against the scheme, convert to IOB2, repair (or with strict, reject) bad I- tags."""
    if not tokens:
        raise TunelabError(f"{path}, line {lines[0]}: empty sentence (no tokens). Remove it.")
    for tok, tag, line in zip(tokens, tags, lines):
        if not tok.strip():
            raise TunelabError(f"{path}, line {line}: empty token. Every word needs some text.")
        if invalid_tag(tag, scheme):
            raise TunelabError(
                f"{path}, line {line}: tag '{tag}' is not in the declared scheme {scheme} ({expected_tags(scheme)}). "
                f"Fix the tag or set data.tag_scheme (IOB2, IOB1, BIOES)."
            )
    iob2, repaired = repair(to_iob2(tags, scheme))
    if repaired and strict:
        i = repaired[0]
        raise TunelabError(
            f"{path}, line {lines[i]}: '{tags[i]}' after '{tags[i - 1] if i else 'the sentence start'}' "
            "does not continue an entity (invalid IOB2). Start the entity with B-, or set data.strict_tags: false to "
            "repair it."
        )
    return {"tokens": tokens, "tags": iob2, "line": lines[0], "source": str(path), "repaired": len(repaired)}


def warn_repaired(records: list[dict], path: Path) -> None:
    n = sum(r.get("repaired", 0) for r in records)
    if n:
        warnings.warn(
            f"{path}: repaired {n} I- tag(s) that did not continue an entity (I-X after O -> B-X); "
            f"set data.strict_tags: true to reject them instead.",
            stacklevel=3,
        )
