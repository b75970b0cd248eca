"""classify: full fine-tuning of MiniLM-L6 on the built-in movie-review snippets — tunelab vs transformers.Trainer.

    python benchmarks/classify.py                      # 3 arms x 3 seeds, 60 steps of 32: a row per arm in RESULTS.md
    python benchmarks/classify.py --steps 2 --repeats 1 --smoke --model tests/tiny  # the smoke test's run

Arms (each a fresh child process; all see the same examples, once, in one epoch of --steps x 32):
  tunelab          tunelab.train() with its defaults (bf16 autocast where the CPU has it, length-grouped batches)
  trainer          transformers.Trainer + DataCollatorWithPadding, its documented default (fp32, random order)
  trainer_tuned    the same with the speed flags a knowledgeable user sets on CPU: bf16=True where the CPU has native
                   bf16 (where tunelab's precision: auto picks it; fp32 otherwise) and
                   train_sampling_strategy="group_by_length" (transformers 5's name for group_by_length=True)
  tunelab_full_last_layer   (only with --arms) tunelab with its first-token-only last layer switched off
  tunelab_compile           (only with --arms) tunelab with train.compile: true (compile time included in the loop)
  tunelab_torch_dropout     (only with --arms) tunelab with torch's dropout masks instead of its cheaper CPU ones
Same hyper-parameters everywhere: batch 32, max length 128, AdamW lr 1e-4, weight decay 0.01, linear decay after
a 6% warm-up, gradient clipping at 1.0. Validation accuracy is measured after training on the same ~1k held-out
snippets (not timed); the loop time runs from the start of training to the end of the last optimizer step.
"""

from __future__ import annotations

import csv
import json
import math
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BATCH, MAX_LENGTH, LR, WEIGHT_DECAY, WARMUP = 32, 128, 1e-4, 0.01, 0.06


def add_args(p):
    p.add_argument("--model", default="minilm", help="tunelab model name or a local Hugging Face directory")
    p.add_argument(
        "--val-limit",
        type=int,
        default=None,
        help="validate on the first N held-out snippets only (default: all ~1,056)",
    )


def data(args) -> tuple[list[dict], list[dict], str]:
    """The benchmark's examples: steps x 32 of tunelab's train split (seed 42), and its validation split."""
    from tunelab.config import load_config
    from tunelab.models.load import resolve
    from tunelab.tasks.classify.data import read_records

    cfg = load_config(
        {
            "data": {"dataset": "movie_reviews", "max_length": MAX_LENGTH},
            "model": {"name": args.model},
            "train": {"seed": 42},
        }
    )
    splits = read_records(cfg)
    # a fixed random subset: the file is sorted by sentiment, so its first rows are nearly all positive
    order = random.Random(42).sample(range(len(splits.train)), len(splits.train))
    train = [splits.train[i] for i in order[: args.steps * BATCH]]
    val = random.Random(43).sample(
        splits.validation, len(splits.validation)
    )  # shuffled the same way every run (the file is sorted)
    val = val[:64] if args.smoke else val[: args.val_limit]
    return train, val, resolve(cfg.model).location


def warmup_steps(args) -> int:
    return math.ceil(WARMUP * args.steps)


def lengths_of(records, tokenizer) -> list[int]:
    return [
        len(x) for x in tokenizer([r["text"] for r in records], truncation=True, max_length=MAX_LENGTH)["input_ids"]
    ]


def flops_info(model, lengths: list[int]) -> dict:
    """What the MFU estimate needs: non-embedding parameters, layers, width, real tokens and sum of squared lengths."""
    emb = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    cfg = model.config
    return {
        "non_embedding_params": sum(p.numel() for p in model.parameters()) - emb,
        "layers": cfg.num_hidden_layers,
        "hidden": cfg.hidden_size,
        "tokens": sum(lengths),
        "sum_len_sq": sum(n * n for n in lengths),
    }


def flops(run: dict) -> float:
    """6 x non-embedding params x real tokens + attention (QK^T and AV: 4 L^2 d per layer forward, x3 with backward)."""
    f = run["flops_info"]
    return 6 * f["non_embedding_params"] * f["tokens"] + 12 * f["layers"] * f["hidden"] * f["sum_len_sq"]


# ------------------------------------------------------------------ arms


def arm_tunelab_full_last_layer(args) -> dict:
    """tunelab without the first-token-only last layer: what that change buys (not in the default arms)."""
    import tunelab.models.fast_paths as fast_paths

    fast_paths.first_token_only = lambda model: False
    return arm_tunelab(args)


def arm_tunelab_torch_dropout(args) -> dict:
    """tunelab with torch's own dropout masks instead of models/dropout.py's: what that change buys."""
    return arm_tunelab(args, {"fast_cpu_dropout": False})


def arm_tunelab_compile(args) -> dict:
    """tunelab with train.compile: true (torch.compile; its compile time counts in the loop): off by default."""
    return arm_tunelab(args, {"compile": True})


def arm_tunelab(args, train_options: dict | None = None) -> dict:
    import tunelab
    from tunelab.config import ModelConfig
    from tunelab.models.load import load_tokenizer, resolve

    train, val, _ = data(args)
    work = Path(tempfile.mkdtemp(prefix="bench-tunelab-"))
    with open(work / "train.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([r["text"], r["label"]] for r in train)
    with open(work / "val.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows([r["text"], r["label"]] for r in val)
    recipe = {
        "task": "classification",
        # validation is measured after the run with tunelab.evaluate (untimed, as for the baselines): no split here
        "data": {
            "train": str(work / "train.csv"),
            "max_length": MAX_LENGTH,
            "validation_fraction": 0.0,
            "test_fraction": 0.0,
        },
        "model": {"name": args.model},
        **common.tunelab_sections(args, work=work, batch=BATCH, lr=LR, weight_decay=WEIGHT_DECAY,
                                  warmup=warmup_steps(args), **(train_options or {})),
    }  # fmt: skip
    run, marks = common.train_tunelab(recipe)  # no validation in the run: the loop ends at the last step
    peak = common.peak_rss()
    history = [json.loads(x) for x in (run.dir / "metrics.jsonl").read_text().splitlines()]
    val_metrics = tunelab.evaluate(run.dir, work / "val.csv")
    lengths = lengths_of(train, load_tokenizer(resolve(ModelConfig(name=args.model))))
    info = run.info
    return {
        "tokens": sum(lengths),
        "samples": len(train),
        "train_s": marks["steps"][-1] - marks["start"],
        "rss_loaded": marks["rss_loaded"],
        "peak_rss_train": peak,
        "final_loss": [r["loss"] for r in history if "loss" in r][-1],
        "metric": val_metrics["accuracy"],
        "metric_name": "accuracy",
        "steps": info["steps"],
        "precision": info["preprocessing"]["precision"],
        "flops_info": flops_info(marks["model"], lengths),
        "args": {"recipe": recipe, "resolved": (run.dir / "config.yaml").read_text()},
    }


def _trainer_arm(args, tuned: bool) -> dict:
    import datasets
    import numpy as np
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    datasets.disable_progress_bars()
    train, val, location = data(args)
    names = sorted({r["label"] for r in train})
    label2id = {n: i for i, n in enumerate(names)}
    tok = AutoTokenizer.from_pretrained(location)

    def encode(records):
        enc = tok([r["text"] for r in records], truncation=True, max_length=MAX_LENGTH)
        return datasets.Dataset.from_dict(
            {
                "input_ids": enc["input_ids"],
                "token_type_ids": enc["token_type_ids"],
                "attention_mask": enc["attention_mask"],
                "labels": [label2id[r["label"]] for r in records],
            }
        )

    train_ds, val_ds = encode(train), encode(val)
    model = AutoModelForSequenceClassification.from_pretrained(
        location, num_labels=len(names), id2label=dict(enumerate(names)), label2id=label2id
    )
    rss_loaded = common.loaded_rss(model)
    work = tempfile.mkdtemp(prefix="bench-trainer-")
    targs = common.trainer_args(args, work=work, batch=BATCH, eval_batch=128, lr=LR, weight_decay=WEIGHT_DECAY,
                                warmup=warmup_steps(args), tuned=tuned)  # fmt: skip
    marks: dict = {}

    def accuracy(p):
        return {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())}

    training_args = TrainingArguments(**targs)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=DataCollatorWithPadding(tok),
        compute_metrics=accuracy,
        callbacks=[common.loop_timer(marks)],
    )
    trainer.train()
    peak = common.peak_rss()
    ev = trainer.evaluate()
    lengths = [len(x) for x in train_ds["input_ids"]]
    return {
        "tokens": sum(lengths),
        "samples": len(train),
        "train_s": marks["end"] - marks["start"],
        "rss_loaded": rss_loaded,
        "peak_rss_train": peak,
        "final_loss": [h["loss"] for h in trainer.state.log_history if "loss" in h][-1],
        "metric": ev["eval_accuracy"],
        "metric_name": "accuracy",
        "steps": trainer.state.global_step,
        "precision": "bf16" if targs.get("bf16") else "fp32",
        "flops_info": flops_info(model, lengths),
        "args": {
            "given": targs | {"data_collator": "DataCollatorWithPadding(tokenizer)"},
            "optim": str(training_args.optim),
            "sampler": training_args.train_sampling_strategy,
        },
    }


def arm_trainer(args) -> dict:
    return _trainer_arm(args, tuned=False)


def arm_trainer_tuned(args) -> dict:
    return _trainer_arm(args, tuned=True)


ARMS = {
    "tunelab": arm_tunelab,
    "trainer": arm_trainer,
    "trainer_tuned": arm_trainer_tuned,
    "tunelab_full_last_layer": arm_tunelab_full_last_layer,
    "tunelab_compile": arm_tunelab_compile,
    "tunelab_torch_dropout": arm_tunelab_torch_dropout,
}

if __name__ == "__main__":
    common.main(
        "classify",
        __doc__.splitlines()[0],
        ARMS,
        steps=60,
        add_args=add_args,
        flops=flops,
        baselines=("trainer", "trainer_tuned", "tunelab_full_last_layer", "tunelab_compile", "tunelab_torch_dropout"),
        default_arms=["tunelab", "trainer", "trainer_tuned"],
    )
