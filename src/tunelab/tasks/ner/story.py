"""Token classification (NER): from tagged sentences to a fine-tuned model scored on entities.

data  -> read (CoNLL / JSONL / built-in WNUT-16), tags to IOB2, deduplicate, split by sentence, tag space,
         encode into windows of sub-tokens (first sub-token of each word labelled)
model -> pretrained encoder + fresh per-token head; method (full / lora / frozen)
fit   -> the shared loop (validation on entity F1, early stopping, checkpoints)
test  -> best weights, entity metrics per type, confusion plot, model/ + adapter/, model card
"""

from __future__ import annotations

from tunelab.config import Config
from tunelab.data.fingerprint import data_fingerprint
from tunelab.data.splits import Splits
from tunelab.methods import apply_method, count_parameters
from tunelab.metrics.plots import plot_confusion
from tunelab.models.fast_paths import apply_fast_paths
from tunelab.models.load import load_token_classifier, load_tokenizer, resolve
from tunelab.registry import TASKS
from tunelab.runs.rundir import RunDir
from tunelab.tasks.common import Story, check_same_data, selection_metric
from tunelab.tasks.ner.data import WORD, build_tag_space, encode, read_sentences
from tunelab.tasks.ner.spec import TokenClassification


def train(cfg: Config, run: RunDir, resume=False, show_progress=True, on_step=None, on_validation=None) -> dict:
    story = Story.set_up(cfg, run, resume, show_progress, on_step or (lambda step: None), on_validation)
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

    # ---- model and method
    model = load_token_classifier(source, cfg.model, space.id2label)
    model = apply_method(model, cfg.method, TASKS[cfg.task].peft_task)
    fast_paths = apply_fast_paths(model, cfg.train)
    trainable, total = count_parameters(model)
    spec = TokenClassification(space.names, tokenizer.pad_token_id or 0)
    selection = selection_metric(cfg, spec)

    parts = (splits.train, splits.validation, splits.test)
    story.record_start(
        source, selection,
        data={"source": str(d.train or f"built-in:{d.dataset}"), "fingerprint": data_fp, "train": len(train_rows),
              "validation": len(val_rows), "test": len(test_rows), "dropped_duplicates": splits.dropped_duplicates,
              "truncated_train": 0, "windowed_train": sum(len(r["input_ids"]) > 1 for r in train_rows),
              "repaired_tags": sum(r.get("repaired", 0) for part in parts for r in part),
              "entities_train": sum(t.startswith("B-") for r in splits.train for t in r["tags"])},
        labels=space.id2label, entity_types=space.types, method=cfg.method.model_dump(), trainable_params=trainable,
        total_params=total,
        preprocessing={"max_length": d.max_length, "stride": d.stride, "label_all_subtokens": d.label_all_subtokens,
                       "precision": story.precision, **fast_paths, "tag_scheme": d.tag_scheme,
                       "word_pattern": WORD.pattern, "text_column": d.text_column, "tokens_column": d.tokens_column,
                       "tags_column": d.tags_column, "entities_column": d.entities_column},
    )  # fmt: skip

    # ---- train, then the best weights tested once
    model, result = story.fit_best(model, spec, train_rows, val_rows, selection)
    test = story.test(model, spec, test_rows)
    metrics = {"test": test, **result.metrics()}

    # ---- outputs
    if story.rank0:
        if test:
            confusion = run / "confusion_matrix.png"
            plot_confusion(test["confusion_matrix"], test["labels"], confusion, title="entity types per word (test)")
            (run / "per_type.md").write_text(per_type_table(test), encoding="utf-8")
        per_type = "\n## Per entity type (test)\n\n" + per_type_table(test) if test else ""
        story.outputs(model, tokenizer, metrics, result, selection, card_extra=per_type)
    story.accelerator.wait_for_everyone()
    return metrics


def fingerprint(splits: Splits) -> str:
    """The data fingerprint of tagged sentences: the words and IOB2 tags of every sentence."""
    parts = ((name, getattr(splits, name)) for name in ("train", "validation", "test"))
    return data_fingerprint(parts, lambda r: [r["tokens"], r["tags"]])


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
