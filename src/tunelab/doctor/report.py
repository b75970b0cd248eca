"""`tunelab doctor RECIPE` (or --train F [--validation F] [--test F]): the report on a data set before training. It
reads top to bottom:

    every row of every file, as the task family reads it, but recording each bad row instead of stopping at the first
    the splits the run would make of them (its deduplication, its carving, its limit)
    the checks (checks.py): rows as read, text quality, labels, conflicting labels, duplicates, leakage between the
        run's splits, near-duplicates across them (near.py), lengths in the model's tokens (lengths.py)
    recommendations that follow from the findings (advice.py)
    doctor.json (every finding with its rows and line numbers), doctor.md, lengths.png

Exit codes (cli): 0, or 1 with --strict when the data leaks across splits or has conflicting labels; bad input 2.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from tunelab.config import Config
from tunelab.doctor import checks
from tunelab.doctor.advice import recommend
from tunelab.doctor.checks import Finding
from tunelab.doctor.lengths import length_findings, plot_lengths
from tunelab.errors import TunelabError
from tunelab.registry import TASKS, load_object
from tunelab.runs.index import runs_dir

STRICT = ("leakage", "near_duplicates", "conflicting_labels", "shared_sources")  # what --strict fails a pipeline on


@dataclass
class Report:
    out: Path
    task: str
    sizes: dict  # rows per file as read, and per split of the run
    findings: list[Finding]
    recommendations: list[dict]
    seconds: float

    @property
    def strict_failures(self) -> list[Finding]:  # any leakage, even what this run's dedupe drops: the data leaks
        return [
            f
            for f in self.findings
            if f.check in STRICT and (f.check != "conflicting_labels" or f.severity == "problem")
        ]

    def to_json(self) -> dict:
        counts = {s: sum(f.severity == s for f in self.findings) for s in checks.SEVERITIES}
        return {
            "task": self.task,
            "sizes": self.sizes,
            "counts": counts,
            "seconds": round(self.seconds, 2),
            "findings": [asdict(f) for f in self.findings],
            "recommendations": self.recommendations,
        }


def doctor(cfg: Config, out: Path, show_progress: bool = True, estimate: bool = False) -> Report:
    """Every check that applies to the recipe's task, on its data; the outputs written under `out`. `estimate`: also
    the run's time and peak memory, from a few steps measured in a child process (estimate.py)."""
    started = time.perf_counter()
    family = TASKS[cfg.task]
    if family.doctor is None:
        able = ", ".join(t for t, f in TASKS.items() if f.doctor)
        raise TunelabError(f"tunelab doctor checks the data of {able}; task '{cfg.task}' is not built yet.")
    say = print if show_progress else (lambda *a, **k: None)

    # ---- every row, as the family reads it; then the splits the run would make
    data = load_object(family.doctor)  # the family's rows (tasks/<family>/doctor.py)
    problems: list[dict] = []
    files = data.read(cfg, problems)
    made = data.splits(cfg, files)
    splits = {"train": made.train, "validation": made.validation, "test": made.test}
    everything = [r for records in files.values() if records for r in records]
    sizes = {"files": {k: None if v is None else len(v) for k, v in files.items()}, "dropped_duplicates":
             made.dropped_duplicates, "splits": {k: len(v) for k, v in splits.items()}}  # fmt: skip
    say(f"read {len(everything)} rows ({len(problems)} unusable); the run's splits: "
        + ", ".join(f"{k} {v}" for k, v in sizes["splits"].items()), flush=True)  # fmt: skip

    # ---- the checks
    findings = checks.reading(problems) + checks.text_quality(everything)
    weights_apply = "class_weights" in cfg.dump(relevant_only=True)["train"]  # the recipe field applies to the task
    findings += checks.labels(splits, family.target, weights_apply)
    findings += checks.conflicts(everything, family.target, data.conflicts_are_problems)
    findings += checks.duplicates(files, cfg.data.dedupe) + checks.leakage(files, splits, cfg.data.dedupe)
    say("near-duplicates across splits ...", flush=True)
    findings += checks.near(splits)
    say("lengths in the model's tokens ...", flush=True)
    tokenizer = _tokenizer(cfg)
    lengths = data.lengths(splits["train"], tokenizer, cfg)
    if data.long is not None:
        findings += length_findings(lengths, cfg.data.max_length, splits["train"], data.long)
    if data.checks is not None:  # the family's own (text-to-text: source and target lengths, shared sources)
        findings += data.checks(cfg, files, splits, tokenizer)
    # the rows training makes of the examples, and their mean tokens (what the estimate's step count needs)
    m = cfg.data.max_length
    rows = (np.concatenate([[m] * (n // m) + ([n % m] if n % m else []) for n in lengths.tolist()]) if data.pieces
            else lengths if data.long is None else np.minimum(lengths, m)) if len(lengths) else np.zeros(0)  # fmt: skip
    if data.packs and cfg.data.packing and len(rows):  # several samples per row: fewer, fuller rows
        rows = np.asarray(data.packs(np.minimum(rows, m), m))
    augment = cfg.data.augment if data.augments else None  # data.augment: a field of the classification family
    sizes["copies"] = augment.copies if augment is not None and augment.method != "none" else 0
    rows = np.repeat(rows, 1 + sizes["copies"])  # the copies train too, about as long as their sources
    sizes["paraphrases"] = len(splits["train"]) * sizes["copies"] if augment and augment.method == "paraphrase" else 0
    sizes["train_rows"], sizes["row_tokens"] = int(len(rows)), float(rows.mean()) if len(rows) else 0.0
    sizes["test_passes"] = 2 if data.compares_base and cfg.eval.compare_base else 1  # the base model tested too
    sizes["generates"] = data.generates(cfg) if data.generates else 0
    if estimate:
        say("measuring a few training steps ...", flush=True)
        findings.append(_estimate(cfg, sizes))
    findings.sort(key=lambda f: checks.SEVERITIES.index(f.severity))

    # ---- recommendations and outputs
    report = Report(
        Path(out),
        cfg.task,
        sizes,
        findings,
        recommend(cfg, splits, findings, lengths, data.long == "truncates"),
        time.perf_counter() - started,
    )
    report.out.mkdir(parents=True, exist_ok=True)
    (report.out / "doctor.json").write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False, default=str))
    if len(lengths) and data.long is not None:
        plot_lengths(lengths, cfg.data.max_length, report.out / "lengths.png")
    (report.out / "doctor.md").write_text(markdown(report), encoding="utf-8")
    return report


def default_out(recipe: Optional[Path], cfg: Config) -> Path:
    name = Path(recipe).stem if recipe else Path(cfg.data.train).stem if cfg.data.train else cfg.data.dataset
    return runs_dir() / f"doctor-{name}"


def _estimate(cfg: Config, sizes: dict) -> Finding:
    from tunelab.doctor.estimate import estimate

    e = estimate(cfg, sizes)
    if "error" in e:
        return Finding("estimate", "warning", f"no estimate: {e['error']}", data=e)
    return Finding(
        "estimate",
        "info",
        f"the run on this machine: about {e['seconds'] / 60:.1f} min ({e['setup_seconds']} "
        f"s to set up, {e['steps']} steps x {e['step_seconds']} s, {e['validations']} validations and the "
        f"test {e['held_out_seconds']} s{e.get('left_out', '')}), peak memory at least {e['peak_rss_mb']} MB "
        f"(what {e['measured_steps']} measured steps reached; a long run's grows past it).",
        data=e,
    )


def _tokenizer(cfg: Config):
    from tunelab.models.load import load_tokenizer, resolve

    return load_tokenizer(resolve(cfg.model))


def markdown(report: Report) -> str:
    counts = report.to_json()["counts"]
    lines = [
        f"# tunelab doctor: {report.task}",
        "",
        f"{counts['problem']} problems, {counts['warning']} warnings, {counts['info']} notes; rows per file "
        f"{json.dumps(report.sizes['files'])}, the run's splits {json.dumps(report.sizes['splits'])}.",
        "",
    ]
    for f in report.findings:
        lines.append(f"- **{f.severity}** `{f.check}`: {f.message}")
    if report.recommendations:
        lines += ["", "## Recommendations", ""]
        lines += [f"- `{r['set']}`: {r['why']}" for r in report.recommendations]
    plot = " Lengths: lengths.png." if (report.out / "lengths.png").exists() else ""
    lines += ["", f"Every row of every finding, with its file and line: doctor.json.{plot}", ""]
    return "\n".join(lines)
