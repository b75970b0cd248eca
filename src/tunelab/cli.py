"""tunelab's command line: parse, call the API, print. Bad input prints one paragraph and exits 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from tunelab.errors import TunelabError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Fine-tune pretrained language models on your own data.")
config_app = typer.Typer(help="Recipes: print the documented defaults.")
app.add_typer(config_app, name="config")
out = Console()
err = Console(stderr=True)


@app.command()
def train(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe (default: the built-in demo recipe)."),
    task: Optional[str] = typer.Option(None, help="classification | multilabel | regression | ner"),
    model: Optional[str] = typer.Option(None, help="Built-in name, local HF directory, .gguf file or hub id."),
    train_file: Optional[Path] = typer.Option(None, "--train", help="Training data file."),
    validation: Optional[Path] = typer.Option(None, help="Validation data file."),
    test: Optional[Path] = typer.Option(None, help="Test data file."),
    dataset: Optional[str] = typer.Option(None, help="Built-in dataset: movie_reviews, sms_spam, trec; ner: wnut16."),
    text_column: Optional[str] = typer.Option(None, help="Column with the text."),
    label_column: Optional[str] = typer.Option(None, help="Column with the label."),
    method: Optional[str] = typer.Option(None, help="full | lora | frozen"),
    epochs: Optional[float] = typer.Option(None, help="Passes over the training data."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many optimizer steps."),
    output_dir: Optional[Path] = typer.Option(None, help="Run directory (default runs/<task>-<timestamp>)."),
    resume: Optional[Path] = typer.Option(None, help="Continue an interrupted run from its last checkpoint."),
    overwrite: bool = typer.Option(False, help="Replace an existing run directory (only once the new run succeeds)."),
    set_: List[str] = typer.Option([], "--set", help="Any other field: --set optim.lr=1e-4 (repeatable)."),
    quiet: bool = typer.Option(False, help="No progress bar."),
):
    """Fine-tune a model: `tunelab train recipe.yaml` or flags (flags override the recipe)."""
    from tunelab import api
    from tunelab.config import parse_set
    from tunelab.training.fit import Interrupted

    flags = {"task": task, "model.name": model, "data.train": train_file, "data.validation": validation, "data.test": test,
             "data.dataset": dataset, "data.text_column": text_column, "data.label_column": label_column, "method.name": method,
             "train.epochs": epochs, "train.max_steps": max_steps, "train.output_dir": output_dir}
    overrides = {k: str(v) if isinstance(v, Path) else v for k, v in flags.items() if v is not None}
    overrides.update(parse_set(set_))
    try:
        run = api.train(recipe, overrides=overrides, resume=resume, overwrite=overwrite, show_progress=not quiet)
    except Interrupted as e:
        where = resume or overrides.get("train.output_dir") or "the run directory"
        err.print(f"Interrupted at step {e.args[0]}; a checkpoint was saved. Continue with: tunelab train --resume {where}")
        raise typer.Exit(130)
    report(run.dir, run.metrics)


@app.command("eval")
def eval_(run: Path = typer.Argument(..., help="Run directory."), data: Path = typer.Option(..., help="Labelled file to evaluate on."),
          as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON.")):
    """Evaluate a finished run on a labelled file."""
    from tunelab import api

    metrics = api.evaluate(run, data)
    if as_json:
        print(json.dumps(metrics, indent=2))
    else:
        metric_table(f"{data}", metrics)


@app.command()
def predict(
    run: Path = typer.Argument(..., help="Run directory."),
    texts: List[str] = typer.Argument(None, help="Texts to classify (or to find entities in, for ner runs)."),
    input: Optional[Path] = typer.Option(None, "--input", help="File of texts (.csv, .tsv, .jsonl, .json, .parquet, .txt one per line)."),
    output: Optional[Path] = typer.Option(None, "--output", help="Where to write predictions (.jsonl, .json, .csv); default: stdout as JSONL."),
    text_column: Optional[str] = typer.Option(None, help="Column of the input file with the text (default: the run's)."),
    batch_size: int = typer.Option(64, help="Texts per forward pass."),
):
    """Predict labels (or, for ner runs, entity spans) for texts given on the command line or in a file."""
    from tunelab import api
    from tunelab.data.predict_io import read_texts, write_predictions

    if not texts and input is None:
        raise TunelabError("Give texts to predict (tunelab predict RUN \"some text\") or a file with --input.")
    predictor = api.load(run)
    column = text_column or predictor.config.data.text_column
    items = read_texts(input, column) if input is not None else list(texts)
    preds = predictor.predict(items, batch_size=batch_size)
    rows = [{"text": t, **(p if isinstance(p, dict) else {"entities": p})} for t, p in zip(items, preds)]
    if output is None:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
    else:
        write_predictions(rows, output)
        err.print(f"{len(rows)} predictions -> {output}")


@app.command()
def export(run: Path = typer.Argument(..., help="Run directory."), out: Path = typer.Option(..., "--out", help="Destination folder.")):
    """Write a standalone copy of the run's plain Hugging Face model (merged, safetensors)."""
    from tunelab import api

    from tunelab.runs.rundir import RunDir

    path = api.export(run, out)
    tag = RunDir(run).info.get("pipeline_tag", "text-classification")
    out_console = Console()
    out_console.print(f"exported {run}/model -> {path}  (load with transformers: pipeline('{tag}', model='{path}'))")


@config_app.command("defaults")
def config_defaults():
    """Print the default recipe, every field documented."""
    from tunelab.config import defaults_yaml

    print(defaults_yaml(), end="")


@app.callback()
def _root():
    pass


# ---------------------------------------------------------------- report


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
    out.print(f"\n[bold]Run[/bold] {run_dir}  —  {info.get('task')} · {info.get('base_model', {}).get('name')} · method "
              f"{info.get('method', {}).get('name')} ({info.get('trainable_params', 0):,} of {info.get('total_params', 0):,} params trained) · "
              f"{metrics.get('steps')} steps in {metrics.get('train_seconds')} s · status {metrics.get('status')}")
    out.print(f"data: train {info['data']['train']} · validation {info['data']['validation']} · test {info['data']['test']} "
              f"({info['data']['dropped_duplicates']} duplicates dropped, {info['data'].get('truncated_train', 0)} truncated)")
    if metrics.get("validation"):
        out.print(f"best validation (step {metrics.get('best_step')}): " +
                  "  ".join(f"{k} {v:.4f}" for k, v in metrics["validation"].items() if isinstance(v, float)))
    if metrics.get("test"):
        metric_table("test", metrics["test"])
    out.print(f"outputs: {run_dir}/model (plain HF model), curves.png, metrics.json, README.md")


def main() -> None:
    try:
        app()
    except TunelabError as e:
        err.print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
