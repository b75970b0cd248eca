"""Entity tag schemes: check, convert to IOB2 (the scheme used internally), repair, and read entity spans.

    IOB2   B-X starts every entity, I-X continues it:            B-PER I-PER O B-LOC
    IOB1   I-X everywhere; B-X only between two adjacent X:      I-PER I-PER O I-LOC
    BIOES  S-X single word, B-X ... E-X for longer entities:     B-PER E-PER O S-LOC

Spans follow seqeval's strict IOB2 mode: an entity is B-X followed by any number of I-X; an I-X that does
not continue an entity of type X is not part of any entity.
"""

from __future__ import annotations

SCHEMES = {"IOB2": ("B", "I"), "IOB1": ("B", "I"), "BIOES": ("B", "I", "E", "S")}


def split_tag(tag: str) -> tuple[str, str]:
    """'B-geo-loc' -> ('B', 'geo-loc'); 'O' -> ('O', '')."""
    if tag == "O":
        return "O", ""
    return tag[0], tag[2:]


def invalid_tag(tag: str, scheme: str) -> bool:
    if tag == "O":
        return False
    return len(tag) < 3 or tag[1] != "-" or tag[0] not in SCHEMES[scheme]


def expected_tags(scheme: str) -> str:
    return "O or " + ", ".join(f"{p}-TYPE" for p in SCHEMES[scheme])


# ------------------------------------------------------------------ conversions


def to_iob2(tags: list[str], scheme: str) -> list[str]:
    """Tags of `scheme` -> IOB2. Invalid sequences (e.g. I-X after O in IOB2) are left for `repair`."""
    if scheme == "IOB2":
        return list(tags)
    if scheme == "BIOES":
        return [{"S": "B", "E": "I"}.get(p, p) + "-" + t if p != "O" else "O" for p, t in map(split_tag, tags)]
    out, prev = [], "O"  # IOB1: an I-X that does not continue an X starts one
    for tag in tags:
        p, t = split_tag(tag)
        out.append(f"B-{t}" if p == "I" and split_tag(prev)[1] != t else tag)
        prev = tag
    return out


def repair(tags: list[str]) -> tuple[list[str], list[int]]:
    """Invalid IOB2 I-X (after O or another type) -> B-X. Returns the repaired tags and the changed positions."""
    out, changed = list(tags), []
    for i, tag in enumerate(out):
        p, t = split_tag(tag)
        if p == "I" and (i == 0 or split_tag(out[i - 1])[1] != t):
            out[i] = f"B-{t}"
            changed.append(i)
    return out, changed


def continuation(tag: str) -> str:
    """The tag of a word's later sub-tokens when they are labelled too: B-X -> I-X."""
    return "I-" + tag[2:] if tag.startswith("B-") else tag


# ------------------------------------------------------------------ spans


def spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """Entities of an IOB2 sequence as (type, start word, end word exclusive), strict: B-X I-X* only."""
    out, i = [], 0
    while i < len(tags):
        p, t = split_tag(tags[i])
        if p != "B":
            i += 1
            continue
        end = i + 1
        while end < len(tags) and tags[end] == f"I-{t}":
            end += 1
        out.append((t, i, end))
        i = end
    return out


def tags_from_spans(n: int, entities: list[tuple[str, int, int]]) -> list[str]:
    """IOB2 tags of n words with the given (type, start, end) entities."""
    tags = ["O"] * n
    for t, start, end in entities:
        tags[start:end] = [f"B-{t}"] + [f"I-{t}"] * (end - start - 1)
    return tags
