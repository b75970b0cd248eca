"""Token classification (NER): from tagged sentences to a fine-tuned model scored on entities.

data  -> read (CoNLL / JSONL / built-in WNUT-16), tags to IOB2, deduplicate, split by sentence, tag space,
         encode into windows of sub-tokens (first sub-token of each word labelled)
model -> pretrained encoder + fresh per-token head; method (full / lora / frozen)
fit   -> the shared loop (validation on entity F1, early stopping, checkpoints)
test  -> best weights, entity metrics per type, confusion plot, model/ + adapter/, model card
"""

from __future__ import annotations

import hashlib
import json

from tunelab.config import Config
from tunelab.data.splits import Splits
from tunelab.data.tokens import WORD, build_tag_space, encode, read_sentences
from tunelab.methods import apply_method, count_parameters
from tunelab.metrics.plots import plot_confusion, plot_curves
from tunelab.models.fast_paths import apply_fast_paths
from tunelab.models.heads import TokenClassification
from tunelab.models.load import load_token_classifier, load_tokenizer, resolve
from tunelab.runs.card import model_card
from tunelab.runs.checkpoint import restore_best
from tunelab.runs.export import save_model
from tunelab.runs.rundir import RunDir
from tunelab.tasks.common import check_same_data, selection_metric, versions
from tunelab.training.distributed import make_accelerator, seed_everything
from tunelab.training.evaluate import evaluate
from tunelab.training.fit import fit
from tunelab.training.precision import resolve as resolve_precision

DEFAULT_METRIC = "f1"  # entity-level micro F1 (seqeval's default)


def train(
    cfg: Config, run: RunDir, resume: bool = False, show_progress: bool = True, on_step=lambda step: None
) -> dict:
    accelerator = make_accelerator(cfg.train.num_threads)
    seed_everything(cfg.train.seed)
    precision = resolve_precision(cfg.train.precision, accelerator.device)
    rank0 = accelerator.is_main_process
    d = cfg.data

    # ---- data
    splits = read_sentences(cfg)
    space = build_tag_space(splits)
    data_fp = fingerprint(splits)
    check_same_data(run, data_fp, resume)
    source = resolve(cfg.model)
    tokenizer = load_tokenizer(source)
    train_rows, val_rows, test_rows = (
        encode(part, space, tokenizer, d.max_length, d.stride, label_all=d.label_all_subtokens and part is splits.train)
        for part in (splits.train, splits.validation, splits.test)
    )
    lengths = lambda rows: [r["length"] for r in rows]  # noqa: E731

    # ---- model and method
    model = load_token_classifier(source, cfg.model, space.id2label)
    model = apply_method(model, cfg.method, "TOKEN_CLS")
    fast_paths = apply_fast_paths(model, cfg.train)
    trainable, total = count_parameters(model)
    spec = TokenClassification(space.names, tokenizer.pad_token_id or 0)
    metric, higher = selection_metric(cfg, spec, DEFAULT_METRIC)

    if rank0:
        run.update_info(
            task=cfg.task,
            status="running",
            versions=versions(),
            pipeline_tag="token-classification",
            base_model={
                "name": cfg.model.name,
                "location": source.location,
                "gguf_file": source.gguf_file,
                "sha256": source.content_hash(),
            },
            data={
                "source": str(d.train or f"built-in:{d.dataset}"),
                "fingerprint": data_fp,
                "train": len(train_rows),
                "validation": len(val_rows),
                "test": len(test_rows),
                "dropped_duplicates": splits.dropped_duplicates,
                "truncated_train": 0,
                "windowed_train": sum(len(r["input_ids"]) > 1 for r in train_rows),
                "repaired_tags": sum(
                    r.get("repaired", 0) for part in (splits.train, splits.validation, splits.test) for r in part
                ),
                "entities_train": sum(t.startswith("B-") for r in splits.train for t in r["tags"]),
            },
            labels=space.id2label,
            entity_types=space.types,
            method=cfg.method.model_dump(),
            trainable_params=trainable,
            total_params=total,
            preprocessing={
                "max_length": d.max_length,
                "stride": d.stride,
                "label_all_subtokens": d.label_all_subtokens,
                "precision": precision,
                **fast_paths,
                "tag_scheme": d.tag_scheme,
                "word_pattern": WORD.pattern,
                "text_column": d.text_column,
                "tokens_column": d.tokens_column,
                "tags_column": d.tags_column,
                "entities_column": d.entities_column,
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
        lengths(train_rows),
        spec,
        val_rows,
        lengths(val_rows),
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
            lengths(test_rows),
            spec,
            spec.new_metrics(),
            cfg.eval.batch_size,
            precision,
            accelerator.process_index,
            accelerator.num_processes,
        )
        if test_rows
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
        if test:
            plot_confusion(
                test["confusion_matrix"],
                test["labels"],
                run / "confusion_matrix.png",
                title="entity types per word (test)",
            )
            (run / "per_type.md").write_text(per_type_table(test), encoding="utf-8")
        info = run.update_info(**result.run_info(metric))
        card = model_card(info, cfg.to_yaml(), metrics)
        (run / "README.md").write_text(
            card + ("\n## Per entity type (test)\n\n" + per_type_table(test) if test else ""), encoding="utf-8"
        )
    accelerator.wait_for_everyone()
    return metrics


def fingerprint(splits: Splits) -> str:
    """A hash of exactly what is trained and evaluated on; resume refuses data with another fingerprint."""
    h = hashlib.sha256()
    for name in ("train", "validation", "test"):
        for r in getattr(splits, name):
            h.update(json.dumps([name, r["tokens"], r["tags"]], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def per_type_table(metrics: dict) -> str:
    """A markdown table: precision / recall / F1 / support per entity type, then the micro and macro averages."""
    lines = ["| type | precision | recall | f1 | support |", "|---|---:|---:|---:|---:|"]
    for t, m in metrics["per_type"].items():
        lines.append(f"| {t} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    lines.append(
        f"| **micro** | {metrics['precision']:.3f} | {metrics['recall']:.3f} | {metrics['f1']:.3f} | "
        f"{metrics['entities']} |"
    )
    lines.append(
        f"| **macro** | {metrics['precision_macro']:.3f} | {metrics['recall_macro']:.3f} | {metrics['f1_macro']:.3f} "
        f"| {metrics['entities']} |"
    )
    return "\n".join(lines) + "\n"
