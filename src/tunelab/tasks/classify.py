"""Sequence classification, multilabel and regression: from labelled texts to a fine-tuned, evaluated model.

data  -> read, deduplicate, split, label space, tokenise (cached)
model -> pretrained encoder + fresh head; method (full / lora / frozen)
fit   -> the shared loop (validation, early stopping, checkpoints)
test  -> best weights, test metrics, plots, model/ + adapter/, model card
"""

from __future__ import annotations

from tunelab.config import Config
from tunelab.data.classify import build_label_space, count_truncated, fingerprint, read_records, tokenize
from tunelab.methods import apply_method, count_parameters
from tunelab.metrics.classification import DEFAULT_METRIC
from tunelab.metrics.plots import plot_confusion, plot_curves
from tunelab.models.fast_paths import apply_fast_paths
from tunelab.models.heads import SequenceClassification, class_weights
from tunelab.models.load import load_sequence_classifier, load_tokenizer, resolve
from tunelab.runs.card import model_card
from tunelab.runs.checkpoint import restore_best
from tunelab.runs.export import save_model
from tunelab.runs.rundir import RunDir
from tunelab.tasks.common import check_same_data, selection_metric, tokenizer_id, versions
from tunelab.training.distributed import make_accelerator, seed_everything
from tunelab.training.evaluate import evaluate
from tunelab.training.fit import fit
from tunelab.training.precision import resolve as resolve_precision

PROBLEM_TYPE = {
    "classification": "single_label_classification",
    "multilabel": "multi_label_classification",
    "regression": "regression",
}


def train(
    cfg: Config, run: RunDir, resume: bool = False, show_progress: bool = True, on_step=lambda step: None
) -> dict:
    accelerator = make_accelerator(cfg.train.num_threads)
    seed_everything(cfg.train.seed)
    precision = resolve_precision(cfg.train.precision, accelerator.device)
    rank0 = accelerator.is_main_process

    # ---- data
    splits = read_records(cfg)
    labels = build_label_space(splits, cfg.task)
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

    # ---- model and method
    model = load_sequence_classifier(source, cfg.model, labels.id2label, PROBLEM_TYPE[cfg.task])
    model = apply_method(model, cfg.method, "SEQ_CLS")
    fast_paths = apply_fast_paths(
        model, cfg.train, first_token=True
    )  # the last layer computes only the token the head reads
    trainable, total = count_parameters(model)
    weights = (
        class_weights(cfg.train.class_weights, [r["labels"] for r in train_rows], labels.num_outputs)
        if cfg.task == "classification"
        else None
    )
    spec = SequenceClassification(cfg.task, labels.names, tokenizer.pad_token_id or 0, weights, cfg.eval.threshold)
    metric, higher = selection_metric(cfg, spec, DEFAULT_METRIC[cfg.task])

    if rank0:
        run.update_info(
            task=cfg.task,
            status="running",
            versions=versions(),
            pipeline_tag="text-classification",
            base_model={
                "name": cfg.model.name,
                "location": source.location,
                "gguf_file": source.gguf_file,
                "sha256": source.content_hash(),
            },
            data={
                "source": str(cfg.data.train or f"built-in:{cfg.data.dataset}"),
                "fingerprint": data_fp,
                "train": len(train_rows),
                "validation": len(val_rows),
                "test": len(test_rows),
                "dropped_duplicates": splits.dropped_duplicates,
                "truncated_train": count_truncated(splits.train, tokenizer, cfg.data.max_length),
            },
            labels=labels.id2label,
            method=cfg.method.model_dump(),
            trainable_params=trainable,
            total_params=total,
            preprocessing={
                "max_length": cfg.data.max_length,
                "threshold": cfg.eval.threshold,
                "precision": precision,
                **fast_paths,
                "text_column": cfg.data.text_column,
                "text_pair_column": cfg.data.text_pair_column,
                "label_column": cfg.data.label_column,
            },
            selection={"metric": metric, "mode": "max" if higher else "min"},
        )
        (run / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")

    # ---- train
    result = fit(
        cfg,
        run,
        model,
        train_rows,
        train_ds["length"],
        spec,
        val_rows,
        val_ds["length"] if len(val_rows) else [],
        accelerator,
        precision,
        metric,
        higher,
        resume=resume,
        show_progress=show_progress,
        on_step=on_step,
    )

    # ---- the best weights, tested once
    model = accelerator.unwrap_model(model)
    restore_best(model, run.checkpoints)
    test = (
        evaluate(
            model,
            test_rows,
            test_ds["length"],
            spec,
            spec.new_metrics(),
            cfg.eval.batch_size,
            precision,
            accelerator.process_index,
            accelerator.num_processes,
        )
        if len(test_rows)
        else {}
    )
    metrics = {"test": test, **result.metrics()}

    # ---- outputs
    if rank0:
        save_model(model, tokenizer, run.path)
        run.write_json("metrics.json", metrics)
        plot_curves(
            run.history(), metric, run / "curves.png", title=f"{cfg.task}: {cfg.model.name} ({cfg.method.name})"
        )
        if cfg.task == "classification" and test:
            plot_confusion(test["confusion_matrix"], test["labels"], run / "confusion_matrix.png")
        info = run.update_info(**result.run_info(metric))
        (run / "README.md").write_text(model_card(info, cfg.to_yaml(), metrics), encoding="utf-8")
    accelerator.wait_for_everyone()
    return metrics
