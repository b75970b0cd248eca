"""The text-to-text family for `tunelab doctor` (summarization, translation): each file's pairs read as training reads
them (an empty source or target recorded with its file and line, not stopping at the first), the run's splits (its
deduplication on (prompt, target), its seeded split keeping each source in one split, the given files), and its own
checks:

    lengths         sources and targets in the model's tokens, against data.max_source_tokens / max_target_tokens
    truncation      every source (any split) and training target longer than its limit: cut, with file and line
    shared_sources  one source text in two of the run's splits with different targets (given files can do that; the
                    same pair in two splits is `leakage`)

A pair is compared by its source (text) and target (text_pair): duplicates are the pairs data.dedupe drops; no labels.
data.max_length cuts nothing here (rows are as long as the longest example), so the shared length check is left out.
"""

from __future__ import annotations

import numpy as np

from tunelab.doctor.family import FamilyData
from tunelab.tasks.lm.packing import packed_lengths
from tunelab.tasks.seq2seq.data import pair_files, pair_splits, template
from tunelab.tasks.seq2seq.encode import PromptFormat, encode


def _read(cfg, problems: list) -> dict:
    """Each file's pairs as doctor rows: text (the source), text_pair (the target), source (the file), line; `pair` is
    the record training reads."""
    files = pair_files(cfg, problems)
    as_row = lambda r: {"text": r["source"], "text_pair": r["target"], "source": r["file"], "line": r["line"],  # noqa: E731
                        "pair": r}  # fmt: skip
    return {name: None if records is None else [as_row(r) for r in records] for name, records in files.items()}


def _splits(cfg, files: dict):
    from tunelab.data.splits import Splits

    made = pair_splits(cfg, {k: None if v is None else [r["pair"] for r in v] for k, v in files.items()})
    row_of = {id(r["pair"]): r for rows in files.values() if rows for r in rows}
    parts = ([row_of[id(p)] for p in part] for part in (made.train, made.validation, made.test))
    return Splits(*parts, made.dropped_duplicates)


def _format(cfg, tokenizer) -> PromptFormat:
    """The prompt format the run would use: the model's kind from its config, its chat template if decoder-only."""
    from tunelab.models.load import load_model_config, resolve
    from tunelab.tasks.seq2seq.kind import is_encoder_decoder

    encoder_decoder = is_encoder_decoder(load_model_config(resolve(cfg.model)))
    chat = not encoder_decoder and bool(getattr(tokenizer, "chat_template", None))
    return PromptFormat(template(cfg), encoder_decoder, chat, cfg.data.max_source_tokens)


def _lengths(records: list[dict], tokenizer, cfg) -> np.ndarray:
    """Tokens per training example as encoding makes it (prompt with its cut source, cut target, end): the estimate's
    rows."""
    if not records:
        return np.zeros(0, dtype=np.int64)
    fmt = _format(cfg, tokenizer)
    examples, _, _ = encode([r["pair"] for r in records], tokenizer, fmt, cfg.data.max_target_tokens)
    return np.fromiter((e["length"] for e in examples), dtype=np.int64, count=len(examples))


def _tokens(texts: list[str], tokenizer) -> np.ndarray:
    """Tokens per text as the source and target cuts count them (no special tokens)."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))


def _describe(n: np.ndarray) -> str:
    if not len(n):
        return "none"
    p50, p90, p99 = (int(np.percentile(n, q)) for q in (50, 90, 99))
    return f"{p50} tokens at the median, {p90} at p90, {p99} at p99, {int(n.max())} at most"


def _checks(cfg, files: dict, splits: dict, tokenizer) -> list:
    """The family's findings (doctor.checks' Finding, imported here: this module loads with doctor/family.py alone)."""
    return _length_findings(cfg, splits, tokenizer) + _shared_sources(splits)


def _length_findings(cfg, splits: dict, tokenizer) -> list:
    from tunelab.doctor.checks import Finding, _where, row

    d = cfg.data
    sources = {name: _tokens([r["text"] for r in rs], tokenizer) for name, rs in splits.items()}
    train_targets = _tokens([r["text_pair"] for r in splits["train"]], tokenizer)
    cut_sources = {name: np.flatnonzero(n > d.max_source_tokens) for name, n in sources.items()}
    cut_targets = np.flatnonzero(train_targets > d.max_target_tokens)
    data = {
        "sources": {"train": _summary(sources["train"]), "max_source_tokens": d.max_source_tokens,
                    "cut": {name: len(i) for name, i in cut_sources.items()}},
        "targets": {"train": _summary(train_targets), "max_target_tokens": d.max_target_tokens,
                    "cut": len(cut_targets)},
    }  # fmt: skip
    cut = ", ".join(f"{name} {len(i)}" for name, i in cut_sources.items())
    out = [
        Finding(
            "lengths",
            "info",
            f"training sources are {_describe(sources['train'])}; data.max_source_tokens {d.max_source_tokens} cuts "
            f"sources in every split ({cut}). Training targets are {_describe(train_targets)}; "
            f"data.max_target_tokens {d.max_target_tokens} cuts {len(cut_targets)} of them for training (the "
            "references that generations are scored against stay whole).",
            data=data,
        )
    ]
    rows = [row(splits[name][i], split=name, part="source", tokens=int(sources[name][i]))
            for name, idx in cut_sources.items() for i in idx]  # fmt: skip
    rows += [row(splits["train"][i], split="train", part="target", tokens=int(train_targets[i])) for i in cut_targets]
    if rows:
        every_source = np.concatenate(list(sources.values()))
        n_cut = sum(len(i) for i in cut_sources.values())
        share = max(n_cut / max(len(every_source), 1), len(cut_targets) / max(len(train_targets), 1))
        advice = []
        if n_cut:
            advice.append(f"data.max_source_tokens: {max(_fit(every_source), d.max_source_tokens)}")
        if len(cut_targets):
            advice.append(f"data.max_target_tokens: {max(_fit(train_targets), d.max_target_tokens)}")
        out.append(
            Finding(
                "truncation",
                "warning" if share > 0.05 else "info",
                f"{n_cut} sources and {len(cut_targets)} training targets are "
                f"longer than their limits and lose their end ({_where(rows)}): a cut source hides what the target "
                "says, a cut target teaches outputs that stop short. Raise the limits if the memory allows ("
                + " and ".join(advice)
                + " keep 99% of the training pairs whole), or drop those pairs.",
                rows,
                {"sources_cut": {name: len(i) for name, i in cut_sources.items()}, "targets_cut": len(cut_targets)},
            )
        )
    return out


def _summary(n: np.ndarray) -> dict:
    if not len(n):
        return {"n": 0}
    return {"n": len(n), "p50": int(np.percentile(n, 50)), "p90": int(np.percentile(n, 90)),
            "p99": int(np.percentile(n, 99)), "max": int(n.max())}  # fmt: skip


def _fit(n: np.ndarray) -> int:
    """p99 rounded up to a multiple of 8."""
    return int(-(-int(np.percentile(n, 99)) // 8) * 8) if len(n) else 0


def _shared_sources(splits: dict) -> list:
    """One source text in two of the run's splits with a different target: the held-out target is partly learnt
    from the training one (the very same pair in two splits is the `leakage` check's)."""
    from tunelab.doctor.checks import Finding, _where, row

    first: dict[str, tuple[str, dict]] = {}
    splits_of: dict[tuple, set] = {}
    for name, records in splits.items():
        for r in records:
            splits_of.setdefault((r["text"], r["text_pair"]), set()).add(name)
    rows = []
    for name, records in splits.items():
        for r in records:
            seen = first.setdefault(r["text"], (name, r))
            other = seen[0]
            if other != name and other not in splits_of[(r["text"], r["text_pair"])]:
                rows.append(row(r, split=name, also_in=other, other_line=seen[1].get("line"),
                                other_file=seen[1].get("source")))  # fmt: skip
    if not rows:
        return []
    return [
        Finding(
            "shared_sources",
            "problem",
            f"{len(rows)} source texts occur in two of the run's splits with different targets ({_where(rows)}), e.g. "
            f"{rows[0]['text'][:60]!r} ({rows[0]['split']} and {rows[0]['also_in']}): the held-out score is partly "
            "memory of the training target. Keep each source in one split: remove those rows from the "
            "validation/test file (or from training).",
            rows,
        )
    ]


PAIRS = FamilyData(read=_read, splits=_splits, lengths=_lengths, long=None, packs=packed_lengths, compares_base=True,
                   generates=lambda cfg: cfg.eval.num_generate, checks=_checks)  # fmt: skip
