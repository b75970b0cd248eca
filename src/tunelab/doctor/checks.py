"""The checks of `tunelab doctor`, each a function of labelled records ({"text", "label", "source", "line"[,
"text_pair"]}) that returns Findings. None of them stops at the first problem: every row concerned is listed."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Optional

SEVERITIES = ("problem", "warning", "info")  # problem: fix before training; warning: look at it; info: good to know


@dataclass
class Finding:
    check: str  # what was checked: leakage, near_duplicates, conflicting_labels, empty_text, mojibake, ...
    severity: str  # problem | warning | info
    message: str  # one paragraph: what was found and what to do
    rows: list[dict] = field(default_factory=list)  # every row concerned: {"file", "line", "text", ...}
    data: dict = field(default_factory=dict)  # the numbers behind it (counts, shares, pairs)


def row(r: dict, **extra) -> dict:
    out = {"file": r.get("source"), "line": r.get("line"), "text": r["text"][:300]}
    if "label" in r:
        out["label"] = r["label"]
    return out | extra


def _key(r: dict) -> tuple:
    return (r["text"], r.get("text_pair"))  # what data.dedupe compares


def _where(rows: list[dict], n: int = 3) -> str:
    shown = ", ".join(str(r["file"]) + ("" if r.get("line") is None else f":{r['line']}") for r in rows[:n])
    return shown + (f" and {len(rows) - n} more" if len(rows) > n else "")


# ---------------------------------------------------------------- rows as read


def reading(problems: list[dict]) -> list[Finding]:
    """The rows the reader could not use (malformed, undecodable, empty text or label, a label of the wrong kind)."""
    what = {
        "malformed_row": "rows that could not be parsed",
        "undecodable": "lines with bytes that are not UTF-8",
        "empty_text": "rows with an empty or whitespace-only text",
        "empty_label": "rows without a label",
        "bad_label": "rows whose label the task cannot use",
    }
    by_check: dict[str, list[dict]] = defaultdict(list)
    for p in problems:
        by_check[p["check"]].append(p)
    out = []
    for check, items in by_check.items():
        rows = [{"file": p["file"], "line": p["line"], "message": p["message"]} for p in items]
        severity = "warning" if check == "undecodable" else "problem"
        skipped = "" if check == "undecodable" else " Training stops at the first of them."
        out.append(
            Finding(
                check,
                severity,
                f"{len(items)} {what.get(check, check)} ({_where(rows)}): {items[0]['message']}{skipped}",
                rows,
            )
        )
    return out


_URL = re.compile(r"https?://\S+|www\.\S+")
_MARKUP = re.compile(r"<[^>\n]{1,200}>|&[a-z]{2,8};|&#\d{1,6};")


def text_quality(records: list[dict]) -> list[Finding]:
    """Mojibake (text decoded with the wrong encoding, e.g. 'cafÃ©'), and texts that are mostly markup or URLs."""
    try:
        from ftfy.badness import is_bad
    except ImportError as e:
        from tunelab.errors import TunelabError

        raise TunelabError("tunelab doctor needs its extra: pip install 'tunelab[doctor]' (make installs it).") from e

    mojibake, markup = [], []
    for r in records:
        text = r["text"]
        if "\ufffd" in text or is_bad(text):
            mojibake.append(row(r, fixed=_fixed(text)))
        noise = sum(len(m) for m in _URL.findall(text)) + sum(len(m) for m in _MARKUP.findall(text))
        if noise > 0.5 * len(text):
            markup.append(row(r, share=round(noise / len(text), 2)))
    out = []
    if mojibake:
        out.append(
            Finding(
                "mojibake",
                "warning",
                f"{len(mojibake)} texts look mis-decoded ({_where(mojibake)}), e.g. "
                f"{mojibake[0]['text'][:60]!r} -> {mojibake[0]['fixed'][:60]!r}. Re-export the data as "
                "UTF-8, or repair it with ftfy.fix_text.",
                mojibake,
            )
        )
    if markup:
        out.append(
            Finding(
                "markup",
                "warning",
                f"{len(markup)} texts are mostly markup or URLs ({_where(markup)}): "
                "the model learns little from them. Strip the HTML/URLs, or drop those rows.",
                markup,
            )
        )
    return out


def _fixed(text: str) -> str:
    from ftfy import fix_text

    return fix_text(text)


# ---------------------------------------------------------------- labels


def labels(splits: dict[str, list[dict]], target: Optional[str], class_weights: bool = False) -> list[Finding]:
    """The label distribution per split, imbalance, labels too rare to split or to learn, labels only in held-out.
    `target`: the family's kind of target (registry); `class_weights`: train.class_weights applies to it."""
    real_valued = target == "real-valued"
    if not real_valued and not any("counted" in r for rs in splits.values() for r in rs):
        return []  # a family without labels (lm, mlm) or without a distribution to count (sft)
    if real_valued:
        data = {name: _summary([float(r["label"]) for r in rs]) for name, rs in splits.items() if rs}
        return [Finding("labels", "info", f"regression targets, train: {_describe(data.get('train'))}.", data=data)]
    count = lambda rs: Counter(x for r in rs for x in r["counted"])  # noqa: E731
    counts = {name: dict(count(rs).most_common()) for name, rs in splits.items()}
    train = counts["train"]
    out = [
        Finding(
            "labels",
            "info",
            "labels per split: "
            + "; ".join(f"{name} " + ", ".join(f"{k} {v}" for k, v in c.items()) for name, c in counts.items() if c),
            data=counts,
        )
    ]
    if len(train) >= 2:
        ratio = max(train.values()) / min(train.values())
        if ratio >= 5:
            common, rare = max(train, key=train.get), min(train, key=train.get)
            out.append(
                Finding(
                    "imbalance",
                    "warning",
                    f"the training labels are imbalanced: {common!r} has "
                    f"{train[common]} examples, {rare!r} {train[rare]} ({ratio:.0f}:1). "
                    + (
                        "Accuracy will flatter the model: watch macro-F1 (eval.metric: f1_macro), and consider "
                        "train.class_weights: balanced."
                        if class_weights
                        else "Expect the rare ones to score lowest; the per-label scores in metrics.json show it."
                    ),
                    data={"ratio": round(ratio, 1)},
                )
            )
    total = Counter()
    for c in counts.values():
        total.update(c)
    too_rare = sorted(k for k, v in total.items() if v < 2)
    few = sorted(k for k, v in train.items() if 2 <= v < 10 and k not in too_rare)
    if too_rare:
        out.append(
            Finding(
                "rare_labels",
                "warning",
                f"{len(too_rare)} labels have a single example "
                f"({', '.join(map(repr, too_rare[:5]))}): they cannot be split (no validation or test "
                "example, and --folds refuses them). Add examples or merge them into another label.",
                data={"labels": too_rare},
            )
        )
    if few:
        out.append(
            Finding(
                "rare_labels",
                "warning",
                f"{len(few)} labels have fewer than 10 training examples "
                f"({', '.join(f'{k!r} {train[k]}' for k in few[:5])}): too few to learn reliably.",
                data={"labels": few},
            )
        )
    unseen = [
        row(r)
        for name in ("validation", "test")
        for r in splits.get(name, [])
        if any(x not in train for x in r["counted"])
    ]
    if unseen:
        out.append(
            Finding(
                "unseen_labels",
                "problem",
                f"{len(unseen)} validation/test rows have a label no training "
                f"row has ({_where(unseen)}): training refuses them. Add training examples of those "
                "labels, or remove the rows.",
                unseen,
            )
        )
    return out


def _summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
        "sd": statistics.pstdev(values),
    }


def _describe(s: Optional[dict]) -> str:
    return "none" if not s else f"{s['n']} values, {s['min']:.3g}..{s['max']:.3g}, mean {s['mean']:.3g} ± {s['sd']:.3g}"


def conflicts(records: list[dict], target: Optional[str], problem: bool = True) -> list[Finding]:
    """Identical texts with different labels, anywhere in the data (`problem` False: several answers to one question
    are normal there, e.g. chat data: reported as info). A real-valued target has no conflicts: values are noisy."""
    if target == "real-valued" or not records or "label" not in records[0]:
        return []
    by_text: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        by_text[_key(r)].append(r)
    groups = [g for g in by_text.values() if len({repr(r["label"]) for r in g}) > 1]
    if not groups:
        return []
    rows = [row(r, group=i) for i, g in enumerate(groups) for r in g]
    first = groups[0]
    return [
        Finding(
            "conflicting_labels",
            "problem" if problem else "info",
            f"{len(groups)} texts occur with different labels "
            f"({_where(rows)}): e.g. {first[0]['text'][:60]!r} is "
            f"{' and '.join(repr(r['label']) for r in first[:3])}. "
            + (
                "The model cannot learn both: fix the labels (the rows are listed in doctor.json)."
                if problem
                else "Several answers to one question are common in this kind of data; the model learns their mix."
            ),
            rows,
            {"texts": len(groups)},
        )
    ]


# ---------------------------------------------------------------- duplicates and leakage


def duplicates(files: dict[str, Optional[list[dict]]], dedupe: bool) -> list[Finding]:
    """Exact duplicates inside each file (between the files: leakage)."""
    out = []
    for name, records in files.items():
        if not records:
            continue
        seen: dict[tuple, dict] = {}
        repeats = []
        for r in records:
            k = _key(r)
            if k in seen:
                repeats.append(row(r, first_line=seen[k].get("line")))
            else:
                seen[k] = r
        if repeats:
            handled = (
                "data.dedupe drops them (it is on)"
                if dedupe and name == "train"
                else (
                    "they count twice in training and can land on both sides of a split: set data.dedupe: true"
                    if name == "train"
                    else "they count twice in its metrics"
                )
            )
            out.append(
                Finding(
                    "duplicates",
                    "info" if dedupe and name == "train" else "warning",
                    f"{len(repeats)} exact duplicates inside the {name} data ({_where(repeats)}): {handled}.",
                    repeats,
                )
            )
    return out


def leakage(files: dict[str, Optional[list[dict]]], splits: dict[str, list[dict]], dedupe: bool) -> list[Finding]:
    """Texts the run's own splits share (after its deduplication): a test score that is partly memory. And, where
    data.dedupe drops them from this run's training, the training rows the validation/test files repeat: the files
    still leak for any other use of them."""
    out = []
    first: dict[tuple, tuple[str, dict]] = {}
    rows = []
    for name, records in splits.items():
        for r in records:
            k = _key(r)
            if k in first and first[k][0] != name:
                rows.append(row(r, split=name, also_in=first[k][0], other_line=first[k][1].get("line")))
            first.setdefault(k, (name, r))
    if rows:
        out.append(
            Finding(
                "leakage",
                "problem",
                f"{len(rows)} texts occur in two of the run's splits "
                f"({_where(rows)}): their validation/test scores are memory, not generalisation. Remove "
                "them from one side (or give the files with data.dedupe: true).",
                rows,
            )
        )
    held = {_key(r): r for name in ("validation", "test") for r in (files.get(name) or [])}
    if dedupe and held:
        repeated = [row(r, also_in=held[_key(r)].get("source"), other_line=held[_key(r)].get("line"))
                    for r in (files.get("train") or []) if _key(r) in held]  # fmt: skip
        if repeated:
            out.append(Finding("leakage", "warning", f"{len(repeated)} training rows also occur in the "
                               f"validation/test files ({_where(repeated)}): data.dedupe drops them from this run's "
                               "training, but the files leak for any other use. Remove them from the training file.",
                               repeated))  # fmt: skip
    return out


def near(splits: dict[str, list[dict]]) -> list[Finding]:
    """Near-duplicates across the run's splits (5-gram Jaccard >= 0.8 after normalisation)."""
    from tunelab.doctor.near import THRESHOLD, near_duplicates

    pairs = near_duplicates({name: [r["text"] for r in rs] for name, rs in splits.items()})
    if not pairs:
        return []
    rows = []
    for p in pairs:
        a, b = splits[p["a"][0]][p["a"][1]], splits[p["b"][0]][p["b"][1]]
        rows.append(row(b, split=p["b"][0], similar_to={"split": p["a"][0], **row(a)}, similarity=p["similarity"]))
    e = rows[0]
    return [
        Finding(
            "near_duplicates",
            "problem",
            f"{len(rows)} pairs of near-duplicate texts across the run's "
            f"splits (character 5-gram Jaccard >= {THRESHOLD} after normalising case, punctuation and "
            f"spacing; {_where(rows)}), e.g. {e['text'][:60]!r} ({e['split']}) and "
            f"{e['similar_to']['text'][:60]!r} ({e['similar_to']['split']}), similarity {e['similarity']}. "
            "They inflate held-out scores: keep each group on one side of the split.",
            rows,
        )
    ]
