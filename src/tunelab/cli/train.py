"""`tunelab train`, `eval`, `predict` and `export`: make a run, then measure it, apply it, hand its model on."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional

import typer

from tunelab.cli import render
from tunelab.cli.overrides import recipe_overrides
from tunelab.errors import TunelabError
from tunelab.registry import TASKS


def train(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe (default: the built-in demo recipe)."),
    task: Optional[str] = typer.Option(None, help=" | ".join(TASKS)),
    model: Optional[str] = typer.Option(None, help="Built-in name, local HF directory, .gguf file or hub id."),
    train_file: Optional[Path] = typer.Option(None, "--train", help="Training data file."),
    validation: Optional[Path] = typer.Option(None, help="Validation data file."),
    test: Optional[Path] = typer.Option(None, help="Test data file."),
    dataset: Optional[str] = typer.Option(
        None,
        help="Built-in dataset: movie_reviews, sms_spam, trec, wnut16 (ner), chatterbot (sft), news (lm, mlm), "
        "aclsum (summarization), bible_fr_en (translation), chatterbot_pairs (preference).",
    ),
    text_column: Optional[str] = typer.Option(None, help="Column with the text."),
    label_column: Optional[str] = typer.Option(None, help="Column with the label."),
    source_column: Optional[str] = typer.Option(None, help="Column with the source text (summarization, translation)."),
    target_column: Optional[str] = typer.Option(None, help="Column with the target text (summarization, translation)."),
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
    ray_workers: Optional[int] = typer.Option(
        None, help="Train on Ray with N workers (Ray Train; the [ray] extra); more in distributed.ray."
    ),
):
    """Fine-tune a model: `tunelab train recipe.yaml` or flags (flags override the recipe)."""
    from tunelab import api
    from tunelab.training.fit import Interrupted

    overrides = recipe_overrides(set_, task=task, model=model, train_file=train_file, validation=validation, test=test,
                                 dataset=dataset, text_column=text_column, label_column=label_column,
                                 source_column=source_column, target_column=target_column, method=method,
                                 epochs=epochs, max_steps=max_steps, folds=folds, output_dir=output_dir,
                                 ray_workers=ray_workers)  # fmt: skip
    try:
        run = api.train(recipe, overrides=overrides, resume=resume, overwrite=overwrite, show_progress=not quiet)
    except Interrupted as e:
        where = resume or overrides.get("train.output_dir") or "the run directory"
        render.err.print(
            f"Interrupted at step {e.args[0]}; a checkpoint was saved. Continue with: tunelab train --resume {where}",
            soft_wrap=True,  # the command is copied from the terminal or a log: never broken across lines
        )
        raise typer.Exit(130)
    if int(os.environ.get("RANK", 0)) != 0:  # under torchrun the main process reports, the others are quiet
        return
    if run.info.get("kind") == "cv":
        render.cv_report(run.dir, run.metrics)
    else:
        render.report(run.dir, run.metrics)


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
        render.metric_table(f"{data}", metrics)


def predict(
    run: Path = typer.Argument(..., help="Run directory."),
    texts: List[str] = typer.Argument(
        None, help="Texts to classify (ner runs: to find entities in; summarization/translation runs: source texts)."
    ),
    input: Optional[Path] = typer.Option(
        None, "--input", help="File of texts (.csv, .tsv, .jsonl, .json, .parquet, .txt one per line)."
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", help="Where to write predictions (.jsonl, .csv: streamed; .json, .tsv); default: stdout."
    ),
    text_column: Optional[str] = typer.Option(
        None,
        help="Column of the input file with the text (default: the run's; summarization/translation: its "
        "data.source_column).",
    ),
    batch_size: int = typer.Option(64, help="Texts per forward pass."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted --output .jsonl/.csv after its last complete record."
    ),
    shard: Optional[str] = typer.Option(
        None, "--shard", help="K/N: predict only the K-th of N contiguous blocks of rows (1-based K)."
    ),
    ray_workers: Optional[int] = typer.Option(
        None, min=1, help="Predict the file on Ray Data with N actors, one model each (the [ray] extra)."
    ),
):
    """Predict labels (ner runs: entity spans; summarization/translation runs: the generated text) for texts given on
    the command line or in a file. A file into a .jsonl or .csv output streams in constant memory, each record with its
    input "row" (a row without text: an error record), and can be resumed (--resume) or split (--shard K/N)."""
    import inspect

    from tunelab import api
    from tunelab.data.predict_io import prediction_rows, read_texts, write_predictions
    from tunelab.data.stream import TextFile, output_kind
    from tunelab.predictors.stream import parse_shard, predict_file
    from tunelab.training.progress import Bar

    if not texts and input is None:
        raise TunelabError('Give texts to predict (tunelab predict RUN "some text") or a file with --input.')
    streams = input is not None and output is not None and output_kind(output) is not None
    if (resume or shard or ray_workers) and not streams:
        flag = "--resume" if resume else "--shard" if shard else "--ray-workers"
        raise TunelabError(
            f"{flag} {'spreads' if flag == '--ray-workers' else 'continues or splits'} a file of predictions: give "
            "--input FILE and "
            f"--output with .jsonl or .csv{f' (not {output.suffix})' if output is not None and output.suffix else ''}."
        )
    parts = parse_shard(shard)
    if ray_workers:  # the models load on Ray's actors; here only the run's recipe is read
        from tunelab.config import load_run_config
        from tunelab.predictors.ray_data import predict_file_ray
        from tunelab.runs.rundir import RunDir

        data = load_run_config(RunDir.open(run) / "config.yaml").data
    else:
        predictor = api.load(run)
        data = predictor.config.data
    if input is not None:
        column = text_column or getattr(data, "source_column", None) or data.text_column
    if streams:  # in constant memory, resumable; a record per row, "row" first
        try:
            if ray_workers:
                done = predict_file_ray(run, TextFile(input, column), output, ray_workers, batch_size, resume, parts)
            else:
                done = predict_file(predictor, TextFile(input, column), output, batch_size, resume, parts)
        except KeyboardInterrupt:
            render.err.print(f"Interrupted; {output} holds the rows predicted so far. Continue with the same command "
                             "and --resume.", highlight=False, soft_wrap=True)  # fmt: skip
            raise typer.Exit(130)
        kept = f"{done.kept} kept, " if resume else ""
        errors = f" ({done.errors} of them error records: rows without text)" if done.errors else ""
        block = f" (rows {done.begin}-{done.end - 1} of shard {shard})" if parts and done.end > done.begin else ""
        block = f" (shard {shard} holds no rows)" if parts and not block else block
        said = f"{kept}{done.written} predictions{errors}{block} -> {output}"
        render.err.print(said, highlight=False, soft_wrap=True)  # soft_wrap: a path is never broken across lines
        return
    items = read_texts(input, column) if input is not None else list(texts)
    # a file into a file: a progress bar, where the predictor reports its batches (summarization, translation)
    bar = input is not None and output is not None and "on_batch" in inspect.signature(predictor.predict).parameters
    with Bar("predicting", len(items), enabled=bar) as progress:
        done = [0]

        def on_batch(n: int) -> None:
            done[0] += n
            progress.update(done[0])

        preds = predictor.predict(items, batch_size=batch_size, **({"on_batch": on_batch} if bar else {}))
    rows = prediction_rows(items, preds)
    if output is None:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
    else:
        write_predictions(rows, output)
        render.err.print(f"{len(rows)} predictions -> {output}", soft_wrap=True)  # a path is never broken


def export(
    run: Path = typer.Argument(..., help="Run directory."),
    out: Path = typer.Option(..., "--out", help="Destination folder (new or empty)."),
    format: str = typer.Option(
        "hf", "--format", help="hf (plain Hugging Face model), onnx (encoder runs) or gguf (causal-LM runs)."
    ),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="onnx: int8; gguf: f16 (default) or q8_0."),
    check_data: Optional[Path] = typer.Option(
        None, "--check-data", help="File to measure the export's parity on (default: the run's test split)."
    ),
):
    """Write the run's model where it is used: a plain Hugging Face model (merged, safetensors), ONNX for
    onnxruntime, or GGUF for llama.cpp and Ollama — each compared with the run's model as it is written."""
    from tunelab import api

    path = api.export(run, out, format, quantize, check_data)
    if format == "hf":
        from transformers import AutoConfig

        from tunelab.registry import model_class
        from tunelab.runs.rundir import RunDir
        from tunelab.tasks.seq2seq.encode import PROMPT_FILE

        auto = model_class(RunDir(run).info.get("task"), AutoConfig.from_pretrained(path))  # AutoModel: task unknown
        # summarization/translation: the model's input is the run's template over the text (the run's README.md)
        then = f"; prompts from the template in {PROMPT_FILE}, then generate" if (path / PROMPT_FILE).exists() else ""
        load = f"{auto}.from_pretrained('{path}'){then}"
        render.out.print(f"exported {run}/model -> {path}  (load with transformers: {load})", highlight=False)
        return
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    render.out.print(f"exported {run} -> {path} ({format}{' ' + quantize if quantize else ''})", highlight=False)
    for key, value in manifest.get("parity", {}).items():
        render.out.print(f"  {key}: {value}", highlight=False)
