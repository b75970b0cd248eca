"""tunelab's command line: parse, call the API, print. Bad input prints one paragraph and exits 2."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from tunelab.errors import TunelabError
from tunelab.serve.limits import Limits

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fine-tune pretrained language models on your own data.",
)
data_app = typer.Typer(help="Look at the data as the model will see it.")
app.add_typer(data_app, name="data")
runs_app = typer.Typer(help="The runs on this machine: list, show, compare, remove (the run index).")
app.add_typer(runs_app, name="runs")
RUNS_DIR = typer.Option(None, "--runs-dir", help="The runs directory (default: TUNELAB_RUNS_DIR or ./runs).")
out = Console()
err = Console(stderr=True)


@app.command()
def train(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe (default: the built-in demo recipe)."),
    task: Optional[str] = typer.Option(None, help="classification | multilabel | regression | ner | sft | lm | mlm"),
    model: Optional[str] = typer.Option(None, help="Built-in name, local HF directory, .gguf file or hub id."),
    train_file: Optional[Path] = typer.Option(None, "--train", help="Training data file."),
    validation: Optional[Path] = typer.Option(None, help="Validation data file."),
    test: Optional[Path] = typer.Option(None, help="Test data file."),
    dataset: Optional[str] = typer.Option(
        None, help="Built-in dataset: movie_reviews, sms_spam, trec, wnut16 (ner), chatterbot (sft), news (lm, mlm)."
    ),
    text_column: Optional[str] = typer.Option(None, help="Column with the text."),
    label_column: Optional[str] = typer.Option(None, help="Column with the label."),
    method: Optional[str] = typer.Option(None, help="full | lora | frozen"),
    epochs: Optional[float] = typer.Option(None, help="Passes over the training data."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many optimizer steps."),
    folds: Optional[int] = typer.Option(
        None, help="K-fold cross-validation: K runs, out-of-fold predictions, mean ± sd (classification family)."
    ),
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

    flags = {
        "task": task,
        "model.name": model,
        "data.train": train_file,
        "data.validation": validation,
        "data.test": test,
        "data.dataset": dataset,
        "data.text_column": text_column,
        "data.label_column": label_column,
        "method.name": method,
        "train.epochs": epochs,
        "train.max_steps": max_steps,
        "train.folds": folds,
        "train.output_dir": output_dir,
    }
    overrides = {k: str(v) if isinstance(v, Path) else v for k, v in flags.items() if v is not None}
    overrides.update(parse_set(set_))
    try:
        run = api.train(recipe, overrides=overrides, resume=resume, overwrite=overwrite, show_progress=not quiet)
    except Interrupted as e:
        where = resume or overrides.get("train.output_dir") or "the run directory"
        err.print(
            f"Interrupted at step {e.args[0]}; a checkpoint was saved. Continue with: tunelab train --resume {where}"
        )
        raise typer.Exit(130)
    if run.info.get("kind") == "cv":
        cv_report(run.dir, run.metrics)
    else:
        report(run.dir, run.metrics)


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


@app.command("eval")
def eval_(
    run: Path = typer.Argument(..., help="Run directory."),
    data: Path = typer.Option(..., help="Labelled file to evaluate on."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
):
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
    input: Optional[Path] = typer.Option(
        None, "--input", help="File of texts (.csv, .tsv, .jsonl, .json, .parquet, .txt one per line)."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", help="Where to write predictions (.jsonl, .json, .csv); default: stdout as JSONL."
    ),
    text_column: Optional[str] = typer.Option(
        None, help="Column of the input file with the text (default: the run's)."
    ),
    batch_size: int = typer.Option(64, help="Texts per forward pass."),
):
    """Predict labels (or, for ner runs, entity spans) for texts given on the command line or in a file."""
    from tunelab import api
    from tunelab.data.predict_io import prediction_rows, read_texts, write_predictions

    if not texts and input is None:
        raise TunelabError('Give texts to predict (tunelab predict RUN "some text") or a file with --input.')
    predictor = api.load(run)
    column = text_column or predictor.config.data.text_column
    items = read_texts(input, column) if input is not None else list(texts)
    preds = predictor.predict(items, batch_size=batch_size)
    rows = prediction_rows(items, preds)
    if output is None:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
    else:
        write_predictions(rows, output)
        err.print(f"{len(rows)} predictions -> {output}")


@app.command()
def export(
    run: Path = typer.Argument(..., help="Run directory."),
    out: Path = typer.Option(..., "--out", help="Destination folder."),
):
    """Write a standalone copy of the run's plain Hugging Face model (merged, safetensors)."""
    from tunelab import api
    from tunelab.registry import TASKS
    from tunelab.runs.rundir import RunDir

    path = api.export(run, out)
    task = RunDir(run).info.get("task")
    family = TASKS.get(task)
    auto = family.auto_class if family else "AutoModel"  # a task this version does not know: the generic class
    Console().print(f"exported {run}/model -> {path}  (load with transformers: {auto}.from_pretrained('{path}'))")


@app.command()
def generate(
    run: Path = typer.Argument(..., help="Run directory of an sft or lm run."),
    prompts: List[str] = typer.Argument(
        ..., help="Prompts (sft: user messages, answered with the chat template; lm: text to continue)."
    ),
    max_new_tokens: int = typer.Option(128, help="Upper bound on generated tokens (generation also stops at EOS)."),
    temperature: float = typer.Option(0.0, help="0 = greedy; > 0 samples."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling: keep the smallest token set with this much probability."),
    seed: Optional[int] = typer.Option(None, help="Seed for sampling."),
):
    """Generate one answer per prompt with a fine-tuned causal LM."""
    from tunelab import api

    generator = _generator(api.load(run), run)
    for prompt, answer in zip(
        prompts,
        generator.generate(
            list(prompts), max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed
        ),
    ):
        if len(prompts) > 1:
            out.print(f"[bold]> {prompt}[/bold]", highlight=False)
        print(answer)


@app.command()
def chat(
    run: Path = typer.Argument(..., help="Run directory of an sft run."),
    max_new_tokens: int = typer.Option(256, help="Upper bound on tokens per reply."),
    temperature: float = typer.Option(0.0, help="0 = greedy; > 0 samples."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling threshold."),
    system: Optional[str] = typer.Option(None, help="System message that starts the conversation."),
):
    """Talk to a fine-tuned chat model; replies stream as they are generated. Empty line or Ctrl-D ends."""
    from tunelab import api

    generator = _generator(api.load(run), run)
    messages = [{"role": "system", "content": system}] if system else []
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not line:
            break
        messages.append({"role": "user", "content": line})
        print("bot> ", end="", flush=True)
        reply = generator.stream(
            messages if generator.chat else line,
            lambda text: print(text, end="", flush=True),
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
        )
        print()
        messages.append({"role": "assistant", "content": reply})


@app.command()
def serve(
    runs: List[Path] = typer.Argument(None, help="Run directories; each is served under its folder's name."),
    name: List[str] = typer.Option([], "--name", help="NAME=RUN: serve RUN under NAME (repeatable)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; any but loopback needs an API key."),
    port: int = typer.Option(8000, help="Port."),
    api_key: Optional[str] = typer.Option(
        None, envvar="TUNELAB_API_KEY", help="Required as 'Authorization: Bearer KEY' (also from TUNELAB_API_KEY)."
    ),
    max_batch_size: int = typer.Option(
        Limits.max_batch_size, help="Texts (or replies decoded together) per forward pass."
    ),
    max_wait_ms: float = typer.Option(
        Limits.max_wait_ms, help="How long a request waits for others to share its batch."
    ),
    max_body_mb: float = typer.Option(Limits.max_body_mb, help="Largest request body."),
    max_texts: int = typer.Option(Limits.max_texts, help="Texts (or prompts) per request."),
    max_tokens: int = typer.Option(Limits.max_tokens, help="Cap on a request's max_tokens."),
    timeout_s: float = typer.Option(Limits.timeout_s, help="Longest a request may take."),
    max_queue: int = typer.Option(
        Limits.max_queue, help="Requests waiting per endpoint; beyond it: 503 with Retry-After."
    ),
):
    """Serve runs over HTTP: OpenAI-compatible chat, completions and embeddings, /v1/classify, /v1/entities."""
    from tunelab import serve as serving

    serving.require_extra()
    from tunelab.serve.runs import name_runs

    named: dict[str, Path] = {}
    for item in name:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise TunelabError(f"--name {item}: write it NAME=RUN, e.g. --name sentiment=runs/classify-movie_reviews.")
        if key in named:
            raise TunelabError(f"--name {key} is given twice: each name serves one run.")
        named[key] = Path(value)
    named = name_runs(runs or [], named)
    if not named:
        raise TunelabError("Give the runs to serve: tunelab serve runs/RUN [runs/OTHER ...].")
    limits = Limits(max_batch_size, max_wait_ms, max_body_mb, max_texts, max_tokens, timeout_s, max_queue)
    serving.serve_runs(named, host=host, port=port, api_key=api_key, limits=limits)


@app.command()
def tune(
    recipe: Path = typer.Argument(..., help="YAML recipe with a search: block (the fields to search)."),
    trials: Optional[int] = typer.Option(None, help="Completed + pruned trials the study should reach."),
    workers: int = typer.Option(1, help="Trials at once, as separate processes (the threads divided among them)."),
    study_dir: Optional[Path] = typer.Option(None, help="Study directory (default runs/tune-<recipe name>)."),
    storage: Optional[str] = typer.Option(
        None, help="Optuna RDB URL shared by workers on many machines (postgresql://..., sqlite:///...)."
    ),
    timeout: Optional[float] = typer.Option(None, help="Seconds: no new trial starts after this."),
    new: bool = typer.Option(False, help="Start a new study (the old directory is kept beside it)."),
    quiet: bool = typer.Option(False, help="No progress bars."),
    worker: Optional[int] = typer.Option(None, hidden=True),  # set by --workers for its worker processes
    threads: Optional[int] = typer.Option(None, hidden=True),
):
    """Search hyper-parameters (Optuna): trials are ordinary runs; the best keeps its model. Re-run to continue."""
    from tunelab.search import tune as run_study
    from tunelab.training.fit import Interrupted

    try:
        study = run_study(recipe, trials=trials, workers=workers, study_dir=study_dir, storage=storage, timeout=timeout,
                          new=new, show_progress=not quiet, worker=worker, threads=threads)  # fmt: skip
    except Interrupted as e:
        if worker is None:
            study_table(e.args[0])
            err.print(f"Interrupted; every finished trial is kept. Continue with: tunelab tune {recipe}")
        raise typer.Exit(130)
    if worker is None and int(os.environ.get("RANK", 0)) == 0:
        study_table(study)


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


@app.command()
def ensemble(
    runs: List[Path] = typer.Argument(None, help="Finished run directories (members)."),
    out: Path = typer.Option(..., "--out", help="The ensemble's run directory."),
    method: str = typer.Option("mean", help="mean | weighted (by validation metric) | vote (majority label)."),
    from_folds: Optional[Path] = typer.Option(None, help="A cross-validation (train --folds K): its folds as members."),
    data: Optional[Path] = typer.Option(None, help="Labelled file to compare on (default: the members' test split)."),
    overwrite: bool = typer.Option(False, help="Replace the run already in --out."),
):
    """Combine finished runs into one ensemble run directory; predict, eval and serve then use it like any run."""
    from tunelab import api

    result = api.ensemble(runs or [], out=out, method=method, from_folds=from_folds, data=data, overwrite=overwrite)
    ensemble_table(result.dir, result.metrics)


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


@app.command()
def doctor(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe whose data to check (or give the files)."),
    train_file: Optional[Path] = typer.Option(None, "--train", help="Training data file."),
    validation: Optional[Path] = typer.Option(None, help="Validation data file."),
    test: Optional[Path] = typer.Option(None, help="Test data file."),
    task: Optional[str] = typer.Option(None, help="classification | multilabel | regression"),
    model: Optional[str] = typer.Option(None, help="The model whose tokenizer counts the lengths."),
    text_column: Optional[str] = typer.Option(None, help="Column with the text."),
    label_column: Optional[str] = typer.Option(None, help="Column with the label."),
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
    from tunelab.config import DEMO_RECIPE, load_config, parse_set
    from tunelab.doctor import default_out
    from tunelab.doctor import doctor as check

    flags = {"task": task, "model.name": model, "data.train": train_file, "data.validation": validation,
             "data.test": test, "data.text_column": text_column, "data.label_column": label_column,
             "data.max_length": max_length}  # fmt: skip
    overrides = {k: str(v) if isinstance(v, Path) else v for k, v in flags.items() if v is not None}
    overrides.update(parse_set(set_))
    # no recipe: the demo's data, or with --task the task's built-in data and model (the registry's)
    cfg = load_config(recipe or ({} if task else DEMO_RECIPE), overrides)
    report = check(cfg, out_dir or default_out(recipe, cfg), show_progress=not as_json, estimate=estimate)
    if as_json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False, default=str))
    else:
        doctor_report(report)
    if strict and report.strict_failures:
        raise typer.Exit(1)


def doctor_labels(run: Path, out_dir: Optional[Path], as_json: bool) -> None:
    try:
        from tunelab.doctor.labels import label_issues
    except ImportError as e:
        raise TunelabError(f"doctor --labels needs cleanlab ({e.name} is missing): pip install -e '.[doctor]'.")
    from tunelab.runs.index import runs_dir

    summary = label_issues(run, out_dir or runs_dir() / f"doctor-labels-{run.resolve().name}")
    if as_json:
        print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
        return
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
    out.print(f"{counts['problem']} problems, {counts['warning']} warnings, {counts['info']} notes in "
              f"{report.seconds:.1f} s · every row: {report.out}/doctor.json, doctor.md, lengths.png",
              highlight=False)  # fmt: skip


def _generator(predictor, run: Path):
    from tunelab.tasks.lm.predictor import Generator

    if not isinstance(predictor, Generator):
        raise TunelabError(
            f"{run}: is a {predictor.task} run; generate and chat need an sft or lm run. Use `tunelab predict` for "
            "classifiers."
        )
    return predictor


@data_app.command("preview")
def data_preview(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe whose data to show (default: the demo recipe)."),
    n: int = typer.Option(2, "-n", help="Examples to show."),
    set_: List[str] = typer.Option([], "--set", help="Override recipe fields: --set data.train_on=all"),
):
    """Show training examples rendered as the model sees them; for sft the trained tokens are highlighted."""
    from tunelab.config import DEMO_RECIPE, load_config, parse_set
    from tunelab.tasks.preview import preview_examples

    cfg = load_config(recipe or DEMO_RECIPE, parse_set(set_))
    plain_text = not out.is_terminal
    for i, text in enumerate(preview_examples(cfg, n, markup=not plain_text)):
        out.rule(
            f"example {i + 1}"
            + (
                "  (trained tokens in «»)"
                if plain_text and cfg.task == "sft"
                else "  (trained tokens in green)"
                if cfg.task == "sft"
                else ""
            )
        )
        if plain_text:
            print(text)
        else:
            out.print(text, highlight=False)


@app.command("config")
def config_(
    defaults: bool = typer.Option(False, "--defaults", help="Print the default recipe, every field documented."),
    recipe: Optional[Path] = typer.Argument(None, help="A recipe to validate and print resolved."),
):
    """Print the documented default recipe (--defaults), or validate a recipe and print it resolved."""
    from tunelab.config import defaults_yaml, load_config

    if defaults or recipe is None:
        print(defaults_yaml(), end="")
    else:
        print(load_config(recipe).to_yaml(relevant_only=True), end="")  # the fields of its task and method


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
    out.print(
        f"\n[bold]Run[/bold] {run_dir}  —  {info.get('task')} · {info.get('base_model', {}).get('name')} · method "
        f"{info.get('method', {}).get('name')} ({info.get('trainable_params', 0):,} of "
        f"{info.get('total_params', 0):,} params trained) · "
        f"{metrics.get('steps')} steps in {metrics.get('train_seconds')} s · status {metrics.get('status')}"
    )
    out.print(
        f"data: train {info['data']['train']} · validation {info['data']['validation']} · test {info['data']['test']} "
        f"({info['data']['dropped_duplicates']} duplicates dropped, {info['data'].get('truncated_train', 0)} truncated)"
    )
    if metrics.get("validation"):
        out.print(
            f"best validation (step {metrics.get('best_step')}): "
            + "  ".join(f"{k} {v:.4f}" for k, v in metrics["validation"].items() if isinstance(v, float))
        )
    if metrics.get("test"):
        metric_table("test", metrics["test"])
    if metrics.get("base") or metrics.get("generation"):
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


def base_vs_tuned(metrics: dict) -> None:
    """sft/lm: the base model next to the fine-tuned one on the test split, and a few sample generations."""
    table = Table(title="base vs fine-tuned (test split)")
    for c in ("", "base", "fine-tuned"):
        table.add_column(c, justify="right" if c else "left")
    from tunelab.tasks.lm.generation import base_vs_tuned as rows

    fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
    for what, before, after in rows(metrics):
        table.add_row(what, fmt(before), fmt(after))
    out.print(table)
    samples = (metrics.get("generation") or {}).get("samples", [])[:5]
    if samples:
        t = Table(title="sample generations (held-out prompts, greedy)")
        for c in ("prompt", "reference", "prediction"):
            t.add_column(c)
        for sample in samples:
            t.add_row(sample["prompt"], sample["reference"], sample["prediction"])
        out.print(t)


@app.command()
def ui(
    runs_dir: Optional[Path] = RUNS_DIR,
    host: str = typer.Option("127.0.0.1", help="Address to bind; any but loopback needs an API key."),
    port: int = typer.Option(8080, help="Port."),
    api_key: Optional[str] = typer.Option(
        None, envvar="TUNELAB_API_KEY", help="Open the page once with ?key=KEY (also from TUNELAB_API_KEY)."
    ),
):
    """The runs in the browser: the runs table, each run's live curves, confusion matrix, samples and recipe,
    comparisons, studies and cross-validations."""
    from tunelab.ui import serve_dashboard

    serve_dashboard(_runs_root(runs_dir), host=host, port=port, api_key=api_key)


# ---------------------------------------------------------------- tunelab runs


def _runs_root(runs_dir: Optional[Path]) -> Path:
    from tunelab.runs.index import runs_dir as default

    return runs_dir or default()


@runs_app.command("list")
def runs_list(
    task: Optional[str] = typer.Option(None, help="Only this task."),
    status: Optional[str] = typer.Option(None, help="Only this status (running, completed, failed, ...)."),
    kind: Optional[str] = typer.Option(None, help="Only this kind (train, cv, ensemble, study, trial)."),
    since: Optional[str] = typer.Option(None, help="Only runs created on or after this date (2026-12-01)."),
    where: List[str] = typer.Option([], help='A metric or field test: --where "test.accuracy>0.8" (repeatable).'),
    everything: bool = typer.Option(False, "--all", help="Also the trials of studies and the folds of CVs."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
    runs_dir: Optional[Path] = RUNS_DIR,
):
    """The indexed runs, newest first."""
    from tunelab.runs.index import rows
    from tunelab.runs.query import headline, select

    root = _runs_root(runs_dir)
    indexed = rows(root)
    found = select(indexed, task, status, kind, since, where, everything)
    if as_json:
        print(json.dumps([{k: v for k, v in r.items() if k != "info"} for r in found], indent=2, default=str))
        return
    colour = {"running": "cyan", "completed": "green", "stopped_early": "green", "failed": "red",
              "interrupted": "yellow", "pruned": "dim"}  # fmt: skip
    t = Table(title=f"{len(found)} runs in {root}")
    for c in ("name", "task", "kind", "status", "model", "method", "steps", "best", "test", "created"):
        t.add_column(c, justify="right" if c in ("steps", "best") else "left")
    for r in found:
        score = "{} {:.4f}".format(*shown) if (shown := headline(r)) else ""
        best = f"{r['best_metric']} {r['best_value']:.4f}" if isinstance(r["best_value"], (int, float)) else ""
        t.add_row(r["name"], r["task"] or "", r["kind"] or "", f"[{colour.get(r['status'], 'white')}]{r['status']}[/]",
                  Path(str(r["model"] or "")).name, str(r["method"] or ""), str(r["step"] or ""), best,
                  score, (r["created"] or "")[:16].replace("T", " "))  # fmt: skip
    out.print(t)
    if not indexed:
        out.print(f"no index in {root} yet: `tunelab runs sync` builds it from the run directories there.")


@runs_app.command("show")
def runs_show(
    run: str = typer.Argument(..., help="A run: its path, folder name or a unique prefix."),
    as_json: bool = typer.Option(False, "--json", help="Print run.json and metrics.json as JSON."),
    runs_dir: Optional[Path] = RUNS_DIR,
):
    """One run: what it is, how it went, its metrics and files."""
    from tunelab.runs.query import find

    r = find(run, _runs_root(runs_dir))
    if as_json:
        print(json.dumps({"path": r["path"], "run": r["info"], "metrics": r["metrics"]}, indent=2, default=str))
        return
    report(Path(r["path"]), r["metrics"] or {"status": r["status"], "steps": r["step"]})
    files = sorted(p.name for p in Path(r["path"]).iterdir()) if Path(r["path"]).is_dir() else []
    out.print(f"files: {', '.join(files)}", highlight=False)


@runs_app.command("compare")
def runs_compare(
    runs: List[str] = typer.Argument(..., help="Two or more runs (paths, names or unique prefixes)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    runs_dir: Optional[Path] = RUNS_DIR,
):
    """Runs side by side: their metrics, and the recipe fields where they differ."""
    from tunelab.runs.query import compare, find

    if len(runs) < 2:
        raise TunelabError("tunelab runs compare needs two or more runs.")
    root = _runs_root(runs_dir)
    c = compare([find(name, root) for name in runs])
    if as_json:
        print(json.dumps(c, indent=2, default=str))
        return
    fmt = lambda v: "—" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    for title, rows_ in (("metrics", c["metrics"]), ("recipe fields that differ", c["recipe"])):
        t = Table(title=title)
        t.add_column("")
        for name in c["runs"]:
            t.add_column(name, justify="right")
        for key, values in rows_.items():
            t.add_row(key, *map(fmt, values))
        out.print(t)


@runs_app.command("rm")
def runs_rm(
    runs: List[str] = typer.Argument(..., help="Runs to delete (paths, names or unique prefixes)."),
    yes: bool = typer.Option(False, "--yes", help="Really delete the run directories."),
    runs_dir: Optional[Path] = RUNS_DIR,
):
    """Delete runs: their directories and their index rows (asks for --yes)."""
    import shutil

    from tunelab.runs.index import forget
    from tunelab.runs.query import find

    root = _runs_root(runs_dir)
    found = [find(name, root) for name in runs]
    if not yes:
        for r in found:
            out.print(f"would delete {r['path']} ({r['task']}, {r['status']})", highlight=False)
        raise TunelabError("tunelab runs rm deletes the run directories: add --yes to do it.")
    for r in found:
        if Path(r["path"]).is_dir() and (Path(r["path"]) / "run.json").exists():  # only ever a run directory
            shutil.rmtree(r["path"])
        forget(Path(r["path"]), root)
        out.print(f"deleted {r['path']}", highlight=False)


@runs_app.command("sync")
def runs_sync(
    also: List[Path] = typer.Argument(None, help="Other folders whose runs to index too."),
    runs_dir: Optional[Path] = RUNS_DIR,
):
    """Rebuild the run index from the run.json files under the runs directory (and the folders given)."""
    from tunelab.runs.index import NAME, rebuild

    root = _runs_root(runs_dir)
    n = rebuild(root, tuple(also or ()))
    out.print(f"indexed {n} runs into {root / NAME}", highlight=False)


def main() -> None:
    try:
        app()
    except TunelabError as e:
        err.print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
