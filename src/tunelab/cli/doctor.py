"""`tunelab doctor`: check a data set before training (tunelab.doctor), or the suspect labels of a trained run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from tunelab.cli import render
from tunelab.cli.overrides import recipe_overrides
from tunelab.errors import TunelabError


def doctor(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe whose data to check (or give the files)."),
    train_file: Optional[Path] = typer.Option(None, "--train", help="Training data file."),
    validation: Optional[Path] = typer.Option(None, help="Validation data file."),
    test: Optional[Path] = typer.Option(None, help="Test data file."),
    task: Optional[str] = typer.Option(
        None, help="classification | multilabel | regression | ner | sft | lm | mlm | summarization | translation"
    ),
    model: Optional[str] = typer.Option(None, help="The model whose tokenizer counts the lengths."),
    text_column: Optional[str] = typer.Option(None, help="Column with the text."),
    label_column: Optional[str] = typer.Option(None, help="Column with the label."),
    source_column: Optional[str] = typer.Option(None, help="Column with the source text (summarization, translation)."),
    target_column: Optional[str] = typer.Option(None, help="Column with the target text (summarization, translation)."),
    max_length: Optional[int] = typer.Option(None, help="data.max_length to measure truncation against."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Where the report goes (default runs/doctor-<name>)."),
    as_json: bool = typer.Option(False, "--json", help="Print doctor.json instead of the report."),
    strict: bool = typer.Option(False, help="Exit 1 when the data leaks across splits or has conflicting labels."),
    estimate: bool = typer.Option(False, help="Also the run's time and peak memory, from a few measured steps."),
    set_: List[str] = typer.Option([], "--set", help="Any other recipe field: --set data.dedupe=false (repeatable)."),
    labels_of: Optional[Path] = typer.Option(
        None,
        "--labels",
        help="A run: rank the examples whose label is probably wrong (a cross-validation run checks "
        "every training example; a plain run only validation and test).",
    ),
):
    """Check a data set before training: bad rows, labels, conflicts, duplicates, leakage, near-duplicates, lengths.
    With --labels RUN: the suspect labels of a trained run's data (confident learning)."""
    if labels_of is not None:
        return doctor_labels(labels_of, out_dir, as_json)
    from tunelab.config import DEMO_RECIPE, load_config
    from tunelab.doctor import default_out
    from tunelab.doctor import doctor as check

    overrides = recipe_overrides(set_, task=task, model=model, train_file=train_file, validation=validation, test=test,
                                 text_column=text_column, label_column=label_column, source_column=source_column,
                                 target_column=target_column, max_length=max_length)  # fmt: skip
    # no recipe: the demo's data, or with --task the task's built-in data and model (the registry's)
    cfg = load_config(recipe or ({} if task else DEMO_RECIPE), overrides)
    report = check(cfg, out_dir or default_out(recipe, cfg), show_progress=not as_json, estimate=estimate)
    if as_json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False, default=str))
    else:
        render.doctor_report(report)
    if strict and report.strict_failures:
        raise typer.Exit(1)


def doctor_labels(run: Path, out_dir: Optional[Path], as_json: bool) -> None:
    """`doctor --labels RUN`: confident learning over the run's predictions (cleanlab, an optional extra)."""
    try:
        from tunelab.doctor.labels import label_issues
    except ImportError as e:
        raise TunelabError(f"doctor --labels needs cleanlab ({e.name} is missing): pip install -e '.[doctor]'.")
    from tunelab.runs.index import runs_dir

    summary = label_issues(run, out_dir or runs_dir() / f"doctor-labels-{run.resolve().name}")
    if as_json:
        print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
        return
    render.label_report(summary)
