"""preference: DPO with LoRA r=16 on SmolLM2-135M-Instruct (built-in) — tunelab vs TRL's DPOTrainer, and tunelab sft.

    python benchmarks/preference.py                 # 4 arms x 3 seeds, 25 steps x 8 pairs, max length 256
    python benchmarks/preference.py --arms tunelab,trl --repeats 1
    python benchmarks/preference.py --smoke --steps 2 --repeats 1 --model tests/tiny-llama

The pairs: chatterbot-corpus questions (sft.py's qa_pairs(), one answer per question, answers unique), chosen = the
corpus answer, rejected = the corpus answer of another question of the same pool (a seeded derangement: every answer
of the pool is some other question's rejected answer exactly once). These are mismatched corpus answers, not model
output, so the benchmark needs no generation (the built-in chatterbot_pairs set of the recipe uses the model's own
answers instead). Pairs whose question + answer under the chat template take more than max_length / 2 tokens are left
out, so no pair is cut in any arm. 64 pairs are held out for the accuracy (16 with --smoke), 8 are tunelab's
validation, 8 x steps are trained on once (one epoch).

Arms (a fresh child process each; the same pairs and the same hyper-parameters everywhere: LoRA r 16, alpha 16,
dropout 0 on q/k/v/o/gate/up/down projections; 8 pairs per step; AdamW lr 5e-4 (the preference family's LoRA default),
weight decay 0, linear decay after 10% warm-up, clipping 1.0; DPO's sigmoid loss with beta 0.1; max length 256):
  tunelab      tunelab.train({"task": "preference", ...}) on pairs.jsonl with the family's defaults (precision: auto,
               which is fp32 on a CPU without native bf16; length-grouped batches; the reference log-probabilities
               computed once before training with the adapter off, in batches of 16 pairs)
  trl          DPOTrainer as TRL's docs set up LoRA: peft_config, ref_model=None (the reference is the same model with
               its adapter disabled, a second forward in every step), TRL's other defaults (gradient checkpointing on,
               random batches); bf16 set to what tunelab's precision: auto takes on this machine (TRL's own default
               is bf16=True), so both arms compute in the same precision
  trl_tuned    the same with the two knobs TRL offers for this: precompute_ref_log_probs=True (batches of 16 pairs,
               as tunelab) and gradient_checkpointing=False
  sft          the memory row: tunelab sft (task sft, no packing) on the chosen answers with the same sequences per
               step: each training pair's question + corpus answer twice, 16 per step — since the rejected answers
               are a permutation of the chosen ones, these are the same 16 x steps answers, the same real tokens
Timing: train_s = the training loop + the reference pass where an arm makes one before it (tunelab: its pass over
the training and validation pairs; trl_tuned: the precompute); TRL's default arm pays its reference inside the loop.
tunelab's loop time is the mean time of steps 1..N-1 x N (its last step follows its one validation, at the end).
Peak RSS: as sft.py measures it, the rise over the loaded model (tunelab DPO: the RSS as its reference pass starts).
Metric: reward_accuracy(), the same code for every arm and for the starting model: on the held-out pairs, the share
whose chosen answer has the higher mean per-token log-probability (the reply: all the chat template adds after the
generation prompt, as sft.py's held_out_loss scores it), each arm's model loaded back from what it saved (tunelab:
the run's merged model/; TRL: its adapter on a freshly loaded base, merged).
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import sft  # noqa: E402

LR, WARMUP, BETA = 5e-4, 0.1, 0.1
LORA = sft.LORA | {"lora_dropout": 0.0}  # sft.py's adapter; no dropout: the reference is the adapter-off model
PAIRS_PER_STEP = 8
REFERENCE_BATCH = 16  # pairs per batch of the reference pass (tunelab's eval.batch_size default for the family)
HELD_OUT, VALIDATION = 64, 8
TARGETS = {"throughput": 1.5, "rss_rise": 1.0, "accuracy": 0.03, "dpo_vs_sft": 1.2}


def add_args(p):
    p.add_argument(
        "--model",
        default="smollm2",
        help="smollm2 (built-in, de-quantised once into benchmarks/out/cache) or a local HF causal-LM dir",
    )
    p.add_argument("--max-length", type=int, default=256, help="tokens of question + answer (every arm)")


def warmup_steps(steps: int) -> int:
    return math.ceil(WARMUP * steps)


# ------------------------------------------------------------------ pairs


def messages(prompt: str, answer: str | None = None) -> list[dict]:
    m = [{"role": "user", "content": prompt}]
    return m if answer is None else m + [{"role": "assistant", "content": answer}]


def chat_ids(tok, prompt: str, answer: str | None = None) -> list[int]:
    """The question (with the generation prompt), or the question and its answer, under the chat template."""
    return tok.apply_chat_template(
        messages(prompt, answer), add_generation_prompt=answer is None, tokenize=True, return_dict=False
    )


def mismatched(items: list[dict], seed: str) -> list[dict]:
    """Pairs of a pool of (question, answer): chosen = the question's own answer, rejected = the answer of the next
    question in a seeded random cycle through the pool (no question gets its own; each answer is rejected once)."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    other = {order[k]: order[(k + 1) % len(order)] for k in range(len(order))}
    return [{"prompt": it["prompt"], "chosen": it["answer"], "rejected": items[other[i]]["answer"]}
            for i, it in enumerate(items)]  # fmt: skip


def pairs(args, tok) -> dict[str, list[dict]]:
    """{"held_out", "validation", "train"}: the same pairs in every arm and repeat (seeds fixed here, not --seed).
    Held out first, so --steps changes the training pairs only."""
    items, questions, answers = [], set(), set()
    for p in sft.qa_pairs():
        q, a = p["prompt"].strip(), p["completion"].strip()
        if not q or not a or q.lower() in questions or a.lower() in answers:
            continue
        questions.add(q.lower())
        answers.add(a.lower())
        # any question with any answer then fits max_length: nothing is cut, in any arm
        if len(chat_ids(tok, q, a)) <= args.max_length // 2:
            items.append({"prompt": q, "answer": a})
    random.Random(42).shuffle(items)
    sizes = {"held_out": 16 if args.smoke else HELD_OUT, "validation": VALIDATION,
             "train": args.steps * PAIRS_PER_STEP}  # fmt: skip
    if sum(sizes.values()) > len(items):
        raise SystemExit(f"--steps {args.steps}: {sum(sizes.values())} pairs needed, the corpus gives {len(items)}")
    out, start = {}, 0
    for name, n in sizes.items():
        out[name] = mismatched(items[start : start + n], seed=f"preference-{name}")
        start += n
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def sequence_tokens(tok, rows: list[dict]) -> int:
    """Real tokens of the pairs' sequences (question + chosen, question + rejected): the same count in every arm."""
    return sum(len(chat_ids(tok, r["prompt"], r[side])) for r in rows for side in ("chosen", "rejected"))


# ------------------------------------------------------------------ the one metric


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def reward_accuracy(model, tok, rows: list[dict], batch: int = 8) -> dict:
    """The metric every arm (and the starting model) is scored with, by this code: the share of pairs whose chosen
    answer has the higher mean per-token log-probability, and those means averaged over the pairs. An answer's tokens
    are all the chat template adds after the question's generation prompt. Sequences of similar length batched,
    right-padded (causal attention: a real token never sees the padding), fp32."""
    import torch

    seqs = []  # (ids, first answer position, pair, side)
    for i, r in enumerate(rows):
        head = chat_ids(tok, r["prompt"])
        for j, side in enumerate(("chosen", "rejected")):
            ids = chat_ids(tok, r["prompt"], r[side])
            seqs.append((ids, _common_prefix(head, ids), i, j))
    seqs.sort(key=lambda s: len(s[0]))
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    means = torch.zeros(len(rows), 2, dtype=torch.float64)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for k in range(0, len(seqs), batch):
            part = seqs[k : k + batch]
            width = max(len(s[0]) for s in part)
            ids = torch.full((len(part), width), pad, dtype=torch.long)
            mask = torch.zeros((len(part), width), dtype=torch.long)
            for b, (s, _, _, _) in enumerate(part):
                ids[b, : len(s)], mask[b, : len(s)] = torch.tensor(s), 1
            logits = model(input_ids=ids, attention_mask=mask).logits
            for b, (s, start, i, j) in enumerate(part):
                logp = torch.log_softmax(logits[b, start - 1 : len(s) - 1].float(), -1)
                means[i, j] = logp.gather(1, ids[b, start : len(s), None]).double().mean()
    model.train(was_training)
    return {
        "reward_accuracy": float((means[:, 0] > means[:, 1]).double().mean()),
        "chosen_logp": float(means[:, 0].mean()),
        "rejected_logp": float(means[:, 1].mean()),
        "pairs": len(rows),
    }


# ------------------------------------------------------------------ arms


def _recipe(args, work: Path, task: str, batch: int, **data) -> dict:
    return {
        "task": task,
        "data": {"validation": str(work / "val.jsonl"), "test_fraction": 0.0, "max_length": args.max_length} | data,
        "model": {"name": sft.model_dir(args)},
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
            "warmup_steps": warmup_steps(args.steps),
            "scheduler": "linear",
            "max_grad_norm": 1.0,
        },
        "train": {
            "batch_size": batch,
            "epochs": 1,
            "seed": args.seed,
            "output_dir": str(work / "run"),
            "log_every": min(10, args.steps),
            "eval_every": 10**6,  # one validation, after the last step (outside the timed loop)
        },
        "eval": {"num_generate": 0, "compare_base": False},
    }


def _tunelab_result(run, tok, data: dict, **extra) -> dict:
    from transformers import AutoModelForCausalLM

    history = [json.loads(x) for x in (run.dir / "metrics.jsonl").read_text().splitlines()]
    tuned = AutoModelForCausalLM.from_pretrained(run.dir / "model")  # the run's merged plain model, as a user gets it
    acc = reward_accuracy(tuned, tok, data["held_out"])
    return {
        "tokens": sequence_tokens(tok, data["train"]),
        "final_loss": [r["loss"] for r in history if "loss" in r][-1],
        "metric": acc["reward_accuracy"],
        "metric_name": "held-out reward accuracy",
        "held_out": acc,
        "own_validation": run.metrics.get("validation", {}),
        "steps": run.metrics["steps"],
        "precision": run.info["preprocessing"]["precision"],
        **extra,
    }


def arm_tunelab(args) -> dict:
    from transformers import AutoTokenizer

    import tunelab.tasks.preference.story as story

    tok = AutoTokenizer.from_pretrained(sft.model_dir(args))
    data = pairs(args, tok)
    work = Path(tempfile.mkdtemp(prefix="bench-tunelab-preference-"))
    write_jsonl(work / "pairs.jsonl", data["train"])
    write_jsonl(work / "val.jsonl", data["validation"])
    recipe = _recipe(args, work, "preference", PAIRS_PER_STEP, train=str(work / "pairs.jsonl"))
    recipe["preference"] = {"loss": "dpo", "beta": BETA}
    recipe["eval"]["batch_size"] = REFERENCE_BATCH

    reference = {"s": 0.0, "pairs": 0}
    compute = story.reference_logps

    def timed_reference(model, rows, *a, **k):  # instrumentation only: its time, and the RSS as it starts
        if "rss_loaded" not in reference:
            reference["rss_loaded"] = common.loaded_rss(model)
        t0 = time.perf_counter()
        try:
            return compute(model, rows, *a, **k)
        finally:
            reference["s"] += time.perf_counter() - t0
            reference["pairs"] += len(rows)

    story.reference_logps = timed_reference
    try:
        run, marks = common.train_tunelab(recipe)
    finally:
        story.reference_logps = compute
    loop_s, peak = common.loop_before_final_validation(marks)
    return _tunelab_result(
        run, tok, data,
        samples=len(data["train"]),
        train_s=loop_s + reference["s"],
        loop_s=loop_s,
        reference_s=reference["s"],
        reference_pairs=reference["pairs"],
        rss_loaded=reference.get("rss_loaded", marks["rss_loaded"]),
        peak_rss_train=peak,
        reference_read_back=run.info.get("reference", {}).get("read_back"),
        args={"recipe": recipe},
        timing_note="train_s = loop (mean time of steps 1..N-1 x N) + the reference pass before it; rss_loaded: "
        "as the reference pass starts",
    )  # fmt: skip


def arm_sft(args) -> dict:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(sft.model_dir(args))
    data = pairs(args, tok)
    work = Path(tempfile.mkdtemp(prefix="bench-tunelab-sft-"))
    # each training pair's question + chosen answer twice: the rejected answers are the same answers (a permutation)
    rows = [{"prompt": r["prompt"], "response": r["chosen"]} for r in data["train"]] * 2
    write_jsonl(work / "sft.jsonl", rows)
    write_jsonl(work / "val.jsonl", [{"prompt": r["prompt"], "response": r["chosen"]} for r in data["validation"]])
    recipe = _recipe(args, work, "sft", 2 * PAIRS_PER_STEP, train=str(work / "sft.jsonl"), packing=False, dedupe=False)
    run, marks = common.train_tunelab(recipe)
    loop_s, peak = common.loop_before_final_validation(marks)
    tokens = sum(len(chat_ids(tok, r["prompt"], r["response"])) for r in rows)
    return _tunelab_result(
        run, tok, data,
        samples=len(rows),
        train_s=loop_s,
        loop_s=loop_s,
        reference_s=0.0,
        rss_loaded=marks["rss_loaded"],
        peak_rss_train=peak,
        args={"recipe": recipe},
        timing_note="loop time = mean time of steps 1..N-1 x N, peak RSS as of step N-1",
    ) | {"tokens": tokens}  # fmt: skip


def _trl_arm(args, tuned: bool) -> dict:
    try:
        import trl
    except ImportError:
        return {"skipped": "TRL is not installed: pip install -c constraints.txt -e '.[bench]'"}
    import datasets
    import torch
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    datasets.disable_progress_bars()
    location = sft.model_dir(args)
    tok = AutoTokenizer.from_pretrained(location)
    data = pairs(args, tok)
    work = Path(tempfile.mkdtemp(prefix="bench-trl-dpo-"))
    bf16 = common.fast_bf16()  # what tunelab's precision: auto takes here (TRL's own default is bf16=True)
    model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32)
    rss_loaded = common.loaded_rss(model)
    given = dict(
        output_dir=str(work / "out"),
        per_device_train_batch_size=PAIRS_PER_STEP,
        num_train_epochs=1,
        learning_rate=LR,
        weight_decay=0.0,
        lr_scheduler_type="linear",
        warmup_steps=warmup_steps(args.steps),
        max_grad_norm=1.0,
        max_length=args.max_length,
        beta=BETA,
        loss_type=["sigmoid"],
        bf16=bf16,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        seed=args.seed,
        use_cpu=True,
        disable_tqdm=True,
    )
    if tuned:
        given |= dict(precompute_ref_log_probs=True, precompute_ref_batch_size=REFERENCE_BATCH,
                      gradient_checkpointing=False)  # fmt: skip
    marks: dict = {"reference_s": 0.0}

    class TimedDPOTrainer(trl.DPOTrainer):  # instrumentation only: the time of the reference precompute
        def _precompute_ref_logps(self, *a, **k):
            t0 = time.perf_counter()
            try:
                return super()._precompute_ref_logps(*a, **k)
            finally:
                marks["reference_s"] += time.perf_counter() - t0

    config = trl.DPOConfig(**given)
    # TRL's conversational layout: the prompt's messages, each answer as an assistant message
    answer = lambda text: [{"role": "assistant", "content": text}]  # noqa: E731
    train = datasets.Dataset.from_list(
        [{"prompt": messages(r["prompt"]), "chosen": answer(r["chosen"]), "rejected": answer(r["rejected"])}
         for r in data["train"]]
    )  # fmt: skip
    trainer = TimedDPOTrainer(
        model=model,
        ref_model=None,
        args=config,
        train_dataset=train,
        processing_class=tok,
        peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
        callbacks=[common.loop_timer(marks)],
    )
    out = trainer.train()
    peak = common.peak_rss()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    trainer.model.save_pretrained(work / "adapter")
    base = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32)
    acc = reward_accuracy(PeftModel.from_pretrained(base, work / "adapter").merge_and_unload(), tok, data["held_out"])
    loop_s = marks["end"] - marks["start"]
    return {
        "tokens": sequence_tokens(tok, data["train"]),
        "samples": len(data["train"]),
        "train_s": loop_s + marks["reference_s"],
        "loop_s": loop_s,
        "reference_s": marks["reference_s"],
        "rss_loaded": rss_loaded,
        "peak_rss_train": peak,
        "final_loss": sum(losses[-10:]) / len(losses[-10:]) if losses else out.training_loss,
        "metric": acc["reward_accuracy"],
        "metric_name": "held-out reward accuracy",
        "held_out": acc,
        "precision": "bf16" if bf16 else "fp32",
        "steps": trainer.state.global_step,
        "args": {
            "given": given,
            "lora": LORA,
            "gradient_checkpointing": config.gradient_checkpointing,
            "precompute_ref_log_probs": config.precompute_ref_log_probs,
            "ref_model": None,
        },
        "timing_note": "train_s = the loop (on_train_begin .. the last on_step_end) + the reference precompute "
        "(trl_tuned; in __init__)",
    }


def arm_trl(args) -> dict:
    return _trl_arm(args, tuned=False)


def arm_trl_tuned(args) -> dict:
    return _trl_arm(args, tuned=True)


ARMS = {"tunelab": arm_tunelab, "trl": arm_trl, "trl_tuned": arm_trl_tuned, "sft": arm_sft}


# ------------------------------------------------------------------ parent


def starting_model(args) -> dict:
    """The starting model's reward accuracy on the held-out pairs (the same for every arm: measured once, here)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location = sft.model_dir(args)
    tok = AutoTokenizer.from_pretrained(location)
    model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32)
    return reward_accuracy(model, tok, pairs(args, tok)["held_out"])


def _median(info: dict, arm: str, key: str) -> float | None:
    values = [r[key] for r in info["runs"] if r["arm"] == arm and key in r]
    return statistics.median(values) if values else None


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(info: dict, before: dict, smoke: bool) -> list[str]:
    """The preference table (pairs/s, seconds of the loop and of the reference pass, RSS, accuracy before -> after)
    and the ratios against their targets, as lines."""
    s = info["summary"]
    m = info["machine"]
    live = [a for a in s if "skipped" not in s[a]]
    lines = [
        f"preference ({'smoke, not a result' if smoke else 'DPO, LoRA r16'}) | {common.cpu_line(m)} | precision: "
        + ", ".join(f"{a} {s[a]['precision']}" for a in live),
        f"held-out reward accuracy ({before['pairs']} pairs; chosen's mean per-token log-prob higher): starting model "
        f"{before['reward_accuracy']:.3f}",
        "",
        f"{'arm':<11}{'precision':>10}{'pairs/s':>10}{'train s':>9}{'loop s':>8}{'ref s':>7}{'peak RSS MB':>13}"
        f"{'rise MB':>9}{'final loss':>12}{'accuracy before -> after (mean±sd)':>37}",
    ]
    for arm, a in s.items():
        if "skipped" in a:
            lines.append(f"{arm:<11}skipped: {a['skipped']}")
            continue
        lines.append(
            f"{arm:<11}{a['precision']:>10}{a['samples_per_s']['median']:>10.2f}{a['train_s']['median']:>9.1f}"
            f"{_median(info, arm, 'loop_s'):>8.1f}{_median(info, arm, 'reference_s'):>7.1f}"
            f"{a['peak_rss_mb']['median']:>13.0f}{a['rss_rise_mb']['median']:>9.0f}{a['final_loss']['median']:>12.4f}"
            f"{before['reward_accuracy']:>22.3f} -> {a['metric']['mean']:.3f}±{a['metric']['sd']:.3f}"
        )
    lines.append("(sft: sequences/s, 2 per pair; the other arms: pairs/s)")
    ref = s.get("tunelab", {})
    for b in ("trl", "trl_tuned"):
        base = s.get(b, {})
        if "skipped" in ref or not ref or "skipped" in base or not base:
            continue
        speed = ref["samples_per_s"]["median"] / base["samples_per_s"]["median"]
        rise = ref["rss_rise_mb"]["median"] / max(base["rss_rise_mb"]["median"], 1e-9)
        delta = ref["metric"]["mean"] - base["metric"]["mean"]
        if b != "trl":  # the targets are against TRL as its docs set it up; trl_tuned is for information
            lines.append(f"tunelab/{b}: pairs/s x{speed:.2f}, RSS rise x{rise:.2f}, reward accuracy {delta:+.3f}")
            continue
        lines.append(
            f"tunelab/{b}: pairs/s x{speed:.2f} (target >= x{TARGETS['throughput']}: "
            f"{_verdict(speed >= TARGETS['throughput'])}), RSS rise x{rise:.2f} (target <= x{TARGETS['rss_rise']}: "
            f"{_verdict(rise <= TARGETS['rss_rise'])}), reward accuracy {delta:+.3f} (target within "
            f"{TARGETS['accuracy']}: {_verdict(abs(delta) <= TARGETS['accuracy'])})"
        )
    if ref and "skipped" not in ref and "sft" in s and "skipped" not in s["sft"]:
        rise = ref["rss_rise_mb"]["median"] / max(s["sft"]["rss_rise_mb"]["median"], 1e-9)
        peak = ref["peak_rss_mb"]["median"] / s["sft"]["peak_rss_mb"]["median"]
        lines.append(
            f"tunelab DPO / tunelab sft (same sequences per step): RSS rise x{rise:.2f} (target <= x"
            f"{TARGETS['dpo_vs_sft']}: {_verdict(rise <= TARGETS['dpo_vs_sft'])}), peak RSS x{peak:.2f}"
        )
    return lines


def main() -> None:
    parser = common.base_parser(__doc__.splitlines()[0], list(ARMS), steps=25)
    add_args(parser)
    args = parser.parse_args()
    if args.child:
        common.run_child(ARMS, args)
        return
    argv = sys.argv[1:]
    sft.model_dir(args)  # once, in the parent: the fp32 copy of the built-in model the children then load
    args.out = args.out or (Path(tempfile.mkdtemp(prefix="bench-preference-")) if args.smoke else
                            common.ROOT / "out" / f"preference-{time.strftime('%Y%m%d-%H%M%S')}")  # fmt: skip
    before = starting_model(args)
    info = common.run_parent("preference", args, argv, str(Path(sys.argv[0]).resolve()), baselines=("trl", "trl_tuned"))
    lines = report(info, before, args.smoke)
    print("\n" + "\n".join(lines))
    info["before"] = before
    info["report"] = lines
    (args.out / "results.json").write_text(json.dumps(info, indent=1, default=str))
    if not args.smoke:
        with open(common.RESULTS, "a", encoding="utf-8") as f:
            f.write("\n```\n" + "\n".join(lines) + "\n```\n")


if __name__ == "__main__":
    main()
