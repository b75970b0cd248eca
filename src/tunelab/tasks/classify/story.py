"""Sequence classification, multilabel and regression: from labelled texts to a fine-tuned, evaluated model.

data  -> read, deduplicate, split, label space, tokenise (cached)
model -> pretrained encoder + fresh head; method (full / lora / frozen)
fit   -> the shared loop (validation, early stopping, checkpoints)
calibrate -> single-label: a temperature fitted on validation, folded into the head (calibration.py)
test  -> best weights, test metrics and error analysis (errors.py), plots, model/ + adapter/, model card
"""

from __future__ import annotations

from tunelab.augment import augment
from tunelab.config import Config
from tunelab.doctor.lengths import keeping_length
from tunelab.methods import apply_method, count_parameters
from tunelab.metrics.plots import plot_confusion, plot_reliability
from tunelab.models.fast_paths import apply_fast_paths
from tunelab.models.load import load_sequence_classifier, load_tokenizer, resolve
from tunelab.registry import TASKS
from tunelab.runs.rundir import RunDir
from tunelab.tasks.classify import errors
from tunelab.tasks.classify.calibration import calibrate
from tunelab.tasks.classify.config import choose_from_data
from tunelab.tasks.classify.data import build_label_space, fingerprint, read_records, token_lengths, tokenize
from tunelab.tasks.classify.errors import ErrorAnalysis
from tunelab.tasks.classify.spec import SequenceClassification, class_weights
from tunelab.tasks.common import Story, check_same_data, selection_metric, tokenizer_id


def train(cfg: Config, run: RunDir, resume=False, show_progress=True, on_step=None, on_validation=None) -> dict:
    story = Story.set_up(cfg, run, resume, show_progress, on_step or (lambda step: None), on_validation)

    # ---- data
    splits = read_records(cfg)
    labels = build_label_space(splits, cfg.task)
    with story.accelerator.main_process_first():  # paraphrases: one process writes, the others read its cache
        splits.train, augmented = augment(
            splits.train, cfg.data.augment, cfg.data.split_seed, story.show_progress and story.rank0
        )
    data_fp = fingerprint(splits)
    check_same_data(run, data_fp, resume)
    source = resolve(cfg.model)
    tokenizer = load_tokenizer(source)
    key = f"{data_fp}-{tokenizer_id(tokenizer, source)}-{cfg.data.max_length}-{cfg.task}"
    train_ds, val_ds, test_ds = (
        tokenize(getattr(splits, s), labels, tokenizer, cfg.data.max_length, f"{key}-{s}")
        for s in ("train", "validation", "test")
    )
    train_rows, val_rows, test_rows = train_ds.to_list(), val_ds.to_list(), test_ds.to_list()
    # before record_start, so config.yaml records the value used; a resumed run reads that back (explicit by then)
    chosen = run.info.get("chosen", {}) if resume else choose_from_data(cfg, len(train_rows))
    train_lengths = token_lengths(splits.train, tokenizer)  # untruncated: how many lose their end, what would keep 95%

    # ---- model and method; the last layer computes only the token the head reads
    model = load_sequence_classifier(source, cfg.model, labels.id2label, TASKS[cfg.task].problem_type)
    model = apply_method(model, cfg.method, TASKS[cfg.task].peft_task)
    fast_paths = apply_fast_paths(model, cfg.train, first_token=True)
    trainable, total = count_parameters(model)
    train_labels = [r["labels"] for r in train_rows]
    weights = (
        class_weights(cfg.train.class_weights, train_labels, labels.num_outputs)
        if cfg.task == "classification"
        else None
    )
    spec = SequenceClassification(cfg.task, labels.names, tokenizer.pad_token_id or 0, weights, cfg.eval.threshold)
    selection = selection_metric(cfg, spec)

    d = cfg.data
    story.record_start(
        source, selection,
        data={"source": str(d.train or f"built-in:{d.dataset}"), "fingerprint": data_fp, "train": len(train_rows),
              "validation": len(val_rows), "test": len(test_rows), "dropped_duplicates": splits.dropped_duplicates,
              "augmented": augmented, "truncated_train": int((train_lengths > d.max_length).sum()),
              "length_keeping_95": keeping_length(train_lengths, 0.95)},
        chosen=chosen,
        labels=labels.id2label, method=cfg.method.model_dump(), trainable_params=trainable, total_params=total,
        preprocessing={"max_length": d.max_length, "threshold": cfg.eval.threshold, "precision": story.precision,
                       **fast_paths, "text_column": d.text_column, "text_pair_column": d.text_pair_column,
                       "label_column": d.label_column},
    )  # fmt: skip

    # ---- train; the best weights calibrated on validation (T folded into the head), then tested once
    model, result = story.fit_best(model, spec, train_rows, val_rows, selection)
    a = story.accelerator
    if cfg.task != "classification":
        calibration = {
            "applied": False,
            "why": f"temperature scaling is for single-label classification, not {cfg.task}",
        }
    elif not cfg.eval.calibrate or story.pruned:
        calibration = {"applied": False, "why": "eval.calibrate is off" if not cfg.eval.calibrate else "pruned"}
    else:
        calibration = calibrate(model, spec, val_rows, cfg.eval.batch_size, story.precision, a.process_index,
                                a.num_processes)  # fmt: skip
    analysis = ErrorAnalysis(cfg.task, labels.names, [r["length"] for r in test_rows], cfg.eval.threshold,
                            calibration.get("temperature", 1.0) if calibration["applied"] else 1.0,
                            a.process_index, a.num_processes)  # fmt: skip
    test = story.test(model, spec, test_rows, also=analysis)
    if test and calibration["applied"]:
        calibration["test"] = analysis.calibration()
    metrics = {"test": test, **result.metrics(), "calibration": calibration}
    if test:
        metrics["by_length"] = analysis.by_length()

    # ---- outputs: errors.csv and confusions.md beside the plots
    if story.rank0:
        if cfg.task == "classification" and test:
            plot_confusion(test["confusion_matrix"], test["labels"], run / "confusion_matrix.png")
        if test:
            errors.write(run.path, analysis, splits.test, test)
        if "test" in calibration:
            plot_reliability(calibration["test"]["bins"], calibration["temperature"], run / "reliability.png")
        story.outputs(model, tokenizer, metrics, result, selection)
    story.accelerator.wait_for_everyone()
    return metrics
