"""What the commands print: rich tables and report lines, on the consoles every command shares."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)


def metric_table(title: str, metrics: dict) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        if isinstance(v, float):
            table.add_row(k, f"{v:.4f}")
        elif isinstance(v, int):
            table.add_row(k, str(v))
    out.print(table)
    per_class = metrics.get("per_class") or metrics.get("per_type")
    if per_class:
        t = Table(title="per class" if "per_class" in metrics else "per entity type")
        for c in ("label", "precision", "recall", "f1", "support"):
            t.add_column(c, justify="right" if c != "label" else "left")
        for name, m in per_class.items():
            t.add_row(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
        out.print(t)


def report(run_dir: Path, metrics: dict) -> None:
    from tunelab.runs.rundir import RunDir

    info = RunDir(run_dir).info
    out.print(
        f"\n[bold]Run[/bold] {run_dir}  —  {info.get('task')} · {info.get('base_model', {}).get('name')} · method "
        f"{info.get('method', {}).get('name')} ({info.get('trainable_params', 0):,} of "
        f"{info.get('total_params', 0):,} params trained) · "
        f"{metrics.get('steps')} steps in {metrics.get('train_seconds')} s · "
        + (f"peak memory {info['peak_rss_mb']:,} MB · " if info.get("peak_rss_mb") else "")
        + f"status {metrics.get('status')}"
    )
    data = info["data"]
    cut = (f"sources cut {sum(data['sources_cut'].values())}, targets cut {sum(data['targets_cut'].values())}"
           if "sources_cut" in data else f"{data.get('truncated_train', 0)} truncated")  # fmt: skip
    out.print(
        f"data: train {data['train']} · validation {data['validation']} · test {data['test']} "
        f"({data['dropped_duplicates']} duplicates dropped, {cut})"
    )
    from tunelab.doctor.lengths import truncation_note

    note = truncation_note(data, (info.get("preprocessing") or {}).get("max_length", 0))
    if note:
        out.print(f"[yellow]{note}[/yellow]", highlight=False)
    for field, choice in (info.get("chosen") or {}).items():  # defaults chosen from the data (tasks/classify/config.py)
        out.print(f"{field} {choice['value']} chosen because {choice['because']} (set it in the recipe to override)",
                  highlight=False)  # fmt: skip
    if metrics.get("validation"):
        out.print(
            f"best validation (step {metrics.get('best_step')}): "
            + "  ".join(f"{k} {v:.4f}" for k, v in metrics["validation"].items() if isinstance(v, float))
        )
    if metrics.get("test") and "examples" not in metrics:  # text-to-text: its own table below
        metric_table("test", metrics["test"])
    if "examples" in metrics:  # summarization, translation
        text2text(metrics)
    elif metrics.get("base") or metrics.get("generation"):
        base_vs_tuned(metrics)
    cal = metrics.get("calibration") or {}
    if cal.get("applied") and "test" in cal:
        b, a = cal["test"]["before"], cal["test"]["after"]
        out.print(f"calibration: temperature {cal['temperature']:.3f} folded into model/ · test NLL {b['nll']:.4f} -> "
                  f"{a['nll']:.4f} · ECE {b['ece']:.4f} -> {a['ece']:.4f} (reliability.png)")  # fmt: skip
    diagnosis = metrics.get("diagnosis")
    if diagnosis:
        out.print(f"fit: [bold]{diagnosis['verdict']}[/bold]")
        for f in diagnosis["findings"]:
            out.print(f"  {f['kind']} from step {f['step']}: {f['why']}.\n  what acts on it: {f['act']}.",
                      highlight=False)  # fmt: skip
    extra = ", errors.csv, confusions.md" if (run_dir / "errors.csv").exists() else ""
    out.print(f"outputs: {run_dir}/model (plain HF model), curves.png, metrics.json, README.md{extra}")
    from tunelab.registry import TASKS

    family = TASKS.get(info.get("task"))
    if family:
        out.print(f"use it: {family.usage.replace('RUN', str(run_dir))}", highlight=False)


def comparison_table(title: str, rows, number: str) -> None:
    """(what, base, fine-tuned) rows as a table; a missing value is a dash."""
    table = Table(title=title)
    for c in ("", "base", "fine-tuned"):
        table.add_column(c, justify="right" if c else "left")
    for what, before, after in rows:
        table.add_row(what, *("—" if v is None else number.format(v) for v in (before, after)))
    out.print(table)


def base_vs_tuned(metrics: dict) -> None:
    """sft/lm: the base model next to the fine-tuned one on the test split, and a few sample generations."""
    from tunelab.tasks.lm.generation import base_vs_tuned as rows

    comparison_table("base vs fine-tuned (test split)", rows(metrics), "{:.4f}")
    samples = (metrics.get("generation") or {}).get("samples", [])[:5]
    if samples:
        t = Table(title="sample generations (held-out prompts, greedy)")
        for c in ("prompt", "reference", "prediction"):
            t.add_column(c)
        for sample in samples:
            t.add_row(sample["prompt"], sample["reference"], sample["prediction"])
        out.print(t)


def text2text(metrics: dict) -> None:
    """summarization, translation: base (zero-shot) vs fine-tuned on the test split, and examples side by side."""
    from tunelab.tasks.seq2seq.report import base_vs_tuned as rows

    title = f"base (zero-shot) vs fine-tuned (test split, {metrics['test'].get('generated')} records)"
    comparison_table(title, rows(metrics), "{:.2f}")
    if metrics["examples"]:
        t = Table(title="examples (test split, greedy)")
        for c in ("source", "reference", "base", "fine-tuned"):
            t.add_column(c)
        cell = lambda s: "—" if s is None else s if len(s) <= 200 else s[:199] + "…"  # noqa: E731
        for e in metrics["examples"]:
            t.add_row(cell(e["source"]), cell(e["reference"]), cell(e["base"]), cell(e["tuned"]))
        out.print(t)


def cv_report(run_dir: Path, cv: dict) -> None:
    """Every fold, and mean ± sd: the inner validation, the held-out fold, the test split."""
    from tunelab.cv import SECTIONS

    table = Table(title=f"{cv['k']}-fold cross-validation — {run_dir}")
    table.add_column("metric")
    for j in range(1, cv["k"] + 1):
        table.add_column(f"fold {j}", justify="right")
    table.add_column("mean ± sd", justify="right")
    for section in SECTIONS:
        for name, mean in cv["mean"][section].items():
            cells = [f"{f[section][name]:.4f}" if name in f[section] else "—" for f in cv["folds"]]
            table.add_row(f"{section} {name}", *cells, f"{mean:.4f} ± {cv['sd'][section][name]:.4f}")
    out.print(table)
    out.print(f"out-of-fold predictions (pooled): {json.dumps(cv['oof'])}", highlight=False)
    out.print(f"outputs: {run_dir}/cv.json, oof.jsonl (one line per example), folds/k (ordinary runs), README.md",
              highlight=False)  # fmt: skip


def study_table(study) -> None:
    """The trials, best first, and where the outputs are."""
    table = Table(title=f"study {study.dir} — {study.metric} ({study.direction})")
    for c in ("trial", "state", study.metric, *study.space, "validations", "seconds"):
        table.add_column(c, justify="left" if c == "state" else "right")
    done = [r for r in study.rows if r["value"] is not None]
    done.sort(key=lambda r: r["value"], reverse=study.direction == "maximize")
    fmt = lambda v: "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    for r in done + [r for r in study.rows if r["value"] is None]:
        star = "*" if r["number"] == study.best_number else ""
        params = [fmt(r[f"params.{f}"]) for f in study.space]
        table.add_row(f"{r['number']}{star}", r["state"].lower(), fmt(r["value"]), *params, str(r["validations"]),
                      fmt(r["seconds"]))  # fmt: skip
    out.print(table)
    c = study.counts
    out.print(f"{c.get('complete', 0)} completed, {c.get('pruned', 0)} pruned, {c.get('fail', 0)} failed", end="")
    if study.best_number is None:
        out.print(" · no completed trial yet")
        return
    out.print(f" · best: trial {study.best_number}, {study.metric} {study.best_value:.4f}")
    out.print(
        f"outputs: {study.dir}/best (the best trial's run, model included), best.yaml (tunelab train reproduces it), "
        f"trials.csv, plots/",
        highlight=False,
    )


def ensemble_table(run_dir: Path, report: dict) -> None:
    """The ensemble against each member, on the same examples."""
    names = [n for n, v in report["ensemble"].items() if isinstance(v, float) and n not in ("threshold",)]
    table = Table(title=f"ensemble ({report['method']}) — {report['on']}, {report['n']} examples")
    for c in ("", "weight", *names):
        table.add_column(c, justify="left" if not c else "right")
    table.add_row("ensemble", "", *(f"{report['ensemble'][n]:.4f}" for n in names), style="bold")
    for m in report["members"]:
        table.add_row(m["path"], f"{m['weight']:.3f}", *(f"{m['metrics'][n]:.4f}" for n in names))
    out.print(table)
    gain = report["best_member"]["gain"]
    out.print(f"{report['metric']}: ensemble {report['ensemble'][report['metric']]:.4f}, best member "
              f"{report['best_member'][report['metric']]:.4f} ({gain:+.4f})", highlight=False)  # fmt: skip
    out.print(f"outputs: {run_dir}/run.json (members by path and model hash), ensemble.json, README.md · use: "
              f'tunelab predict {run_dir} "some text"', highlight=False)  # fmt: skip


def doctor_report(report) -> None:
    """Problems first, then warnings and notes; each with where it is; the recommendations; where the rest is."""
    style = {"problem": "bold red", "warning": "yellow", "info": "dim"}
    for f in report.findings:
        out.print(f"[{style[f.severity]}]{f.severity:>7}[/] [bold]{f.check}[/]: {f.message}", highlight=False)
    if report.recommendations:
        out.print("[bold]recommendations[/]")
        for r in report.recommendations:
            out.print(f"  {r['set']} — {r['why']}", highlight=False)
    counts = report.to_json()["counts"]
    plot = ", lengths.png" if (report.out / "lengths.png").exists() else ""
    out.print(f"{counts['problem']} problems, {counts['warning']} warnings, {counts['info']} notes in "
              f"{report.seconds:.1f} s · every row: {report.out}/doctor.json, doctor.md{plot}",
              highlight=False)  # fmt: skip


def label_report(summary: dict) -> None:
    """`doctor --labels`: how many labels look wrong, the ten most likely, and the file with every one."""
    out.print(f"[bold]{summary['issues']}[/] suspect labels among {summary['examples']} examples — checked: "
              f"{summary['scope']}", highlight=False)  # fmt: skip
    if summary["top"]:
        t = Table(title="the most likely wrong (lowest probability of the given label first)")
        for c in ("rank", "where", "text", "given", "suggested", "confidence"):
            t.add_column(c)
        for f in summary["top"][:10]:
            text = f["text"] if len(f["text"]) <= 60 else f["text"][:57] + "..."
            t.add_row(str(f["rank"]), f"{Path(str(f['file'])).name}:{f['line']}", text, f["given_label"],
                      f["suggested_label"], f"{f['confidence']:.3f}")  # fmt: skip
        out.print(t)
    out.print(f"every one: {summary['csv']}", highlight=False)


def runs_table(found: list[dict], root: Path) -> None:
    """`runs list`: one row per run, its status coloured, the test column the API's headline metric."""
    from tunelab.runs.query import headline

    colour = {"running": "cyan", "completed": "green", "stopped_early": "green", "failed": "red",
              "interrupted": "yellow", "pruned": "dim"}  # fmt: skip
    t = Table(title=f"{len(found)} runs in {root}")
    for c in ("name", "task", "kind", "status", "model", "method", "steps", "best", "test", "peak MB", "created"):
        t.add_column(c, justify="right" if c in ("steps", "best", "peak MB") else "left")
    for r in found:
        score = "{} {:.4f}".format(*shown) if (shown := headline(r)) else ""
        best = f"{r['best_metric']} {r['best_value']:.4f}" if isinstance(r["best_value"], (int, float)) else ""
        t.add_row(r["name"], r["task"] or "", r["kind"] or "", f"[{colour.get(r['status'], 'white')}]{r['status']}[/]",
                  Path(str(r["model"] or "")).name, str(r["method"] or ""), str(r["step"] or ""), best,
                  score, str((r.get("info") or {}).get("peak_rss_mb") or ""),
                  (r["created"] or "")[:16].replace("T", " "))  # fmt: skip
    out.print(t)


def comparison(c: dict) -> None:
    """`runs compare`: a metrics table and a table of the recipe fields that differ, one column per run."""
    fmt = lambda v: "—" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    for title, rows_ in (("metrics", c["metrics"]), ("recipe fields that differ", c["recipe"])):
        t = Table(title=title)
        t.add_column("")
        for name in c["runs"]:
            t.add_column(name, justify="right")
        for key, values in rows_.items():
            t.add_row(key, *map(fmt, values))
        out.print(t)
