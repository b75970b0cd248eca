"""Generative fine-tuning of causal (GPT-style) LMs: `sft` (instruction/chat) and `lm` (continued pre-training).

data   -> sft: chats rendered with the model's chat template, loss on the assistant tokens; split by prompt
          lm:  raw documents streamed, split by document, cut into max_length pieces (token budget)
          both: one sample per row, or packed rows (positions restart, no attention across samples)
model  -> pretrained causal LM (GGUF de-quantised and cached); method full / lora / frozen top-k
before -> the base model on the test split: perplexity (sft: of the reference answers) and, for sft, generations
fit    -> the shared loop (validation loss and perplexity, early stopping, checkpoints)
after  -> best weights on the test split, generations on held-out prompts, model/ + adapter/, model card
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from tunelab.config import Config
from tunelab.data.fingerprint import data_fingerprint
from tunelab.errors import TunelabError
from tunelab.methods import adapters_off, apply_method, count_parameters
from tunelab.models.fast_paths import apply_fast_paths
from tunelab.models.load import load_causal_lm, load_tokenizer, plain, resolve
from tunelab.registry import TASKS
from tunelab.runs.rundir import RunDir
from tunelab.tasks.common import Story, check_same_data, selection_metric
from tunelab.tasks.lm.chat import chat_splits, encode_chats, ensure_chat_template, prompt_and_reference
from tunelab.tasks.lm.generation import base_vs_tuned, generation_metrics, sample_table
from tunelab.tasks.lm.packing import as_rows
from tunelab.tasks.lm.predictor import Generator
from tunelab.tasks.lm.spec import CausalLM
from tunelab.tasks.lm.text import causal_pieces, read_text_splits


@dataclass
class LMData:
    train: list[dict]  # rows for the loop: input_ids, labels, position_ids, length
    validation: list[dict]
    test: list[dict]
    fingerprint: str
    info: dict  # for run.json: sizes, truncation counts
    held_out: list[tuple[list[dict], str]] = field(default_factory=list)  # sft: (prompt messages, reference answer)


def train(cfg: Config, run: RunDir, resume=False, show_progress=True, on_step=None, on_validation=None) -> dict:
    story = Story.set_up(cfg, run, resume, show_progress, on_step or (lambda step: None), on_validation)
    _check_method(cfg)

    # ---- data
    source = resolve(cfg.model)
    local = plain(source)  # GGUF: de-quantised once, then cached
    tokenizer = load_tokenizer(local)
    own_template = ensure_chat_template(tokenizer) if cfg.task == "sft" else None
    data = sft_data(cfg, tokenizer) if cfg.task == "sft" else lm_data(cfg, tokenizer)
    if cfg.task == "sft":
        data.info["chat_template"] = "the model's own" if own_template else "fallback ChatML (the model has none)"

    # ---- model and method
    model = apply_method(load_causal_lm(local, cfg.model), cfg.method, TASKS[cfg.task].peft_task)
    apply_fast_paths(model, cfg.train)
    spec = CausalLM(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    return fit_and_report(story, model, tokenizer, spec, data, source)


def fit_and_report(
    story: Story,
    model,
    tokenizer,
    spec,
    data: "LMData",
    source,
    preprocessing: Optional[dict] = None,
    record: Optional[dict] = None,
    before_base: Optional[Callable[[], None]] = None,
    not_in_base: tuple[str, ...] = (),
) -> dict:
    """The story every language-modelling task shares once data, model and spec exist:
    base model measured -> fit -> best weights measured -> model/, metrics.json, curves, card.
    A family's differences (the preference family's): its `preprocessing` and `record` for run.json, `before_base`
    (work once the run is recorded and before the base model is measured: the reference pass) and the test metrics
    that mean nothing for the base model (`not_in_base`)."""
    cfg, run = story.cfg, story.run
    check_same_data(run, data.fingerprint, story.resume)
    trainable, total = count_parameters(model)
    selection = selection_metric(cfg, spec)
    if preprocessing is None:
        preprocessing = {"max_length": cfg.data.max_length, "precision": story.precision, "packing": cfg.data.packing,
                         "train_on": cfg.data.train_on, "fast_cpu_dropout": cfg.train.fast_cpu_dropout}  # fmt: skip
    story.record_start(
        source, selection,
        data=data.info | {"fingerprint": data.fingerprint}, method=cfg.method.model_dump(), trainable_params=trainable,
        total_params=total, preprocessing=preprocessing, **(record or {}),
    )  # fmt: skip
    if before_base is not None:
        before_base()

    # ---- the base model, measured once (kept in run.json so a resumed run does not redo it)
    def measure(m) -> dict:
        out = {"test": story.test(m, spec, data.test)}
        if data.held_out and story.rank0 and not story.pruned:
            out["generation"] = generate_eval(m, tokenizer, data.held_out, cfg, story.precision)
        return out

    base = run.info.get("base_eval")
    if cfg.eval.compare_base and base is None:
        with adapters_off(model):  # a fresh adapter adds zero: the same outputs, less work
            base = measure(model)
        base["test"] = {k: v for k, v in base["test"].items() if k not in not_in_base}
        if story.rank0:
            run.update_info(base_eval=base)

    # ---- train, then the best weights measured once
    model, result = story.fit_best(model, spec, data.train, data.validation, selection)
    tuned = measure(model)
    metrics = {"test": tuned["test"], "generation": tuned.get("generation", {}), "base": base or {}, **result.metrics()}

    # ---- outputs
    if story.rank0:
        story.outputs(model, tokenizer, metrics, result, selection, card_extra=comparison(metrics))
    story.accelerator.wait_for_everyone()
    return metrics


# ------------------------------------------------------------------ data


def sft_data(cfg: Config, tokenizer) -> LMData:
    """Chats -> deduplicated, split by prompt (one prompt's answers never straddle splits), rendered and masked."""
    d = cfg.data
    splits = chat_splits(cfg)
    train, val, test, dropped = splits.train, splits.validation, splits.test, splits.dropped_duplicates
    encoded = {
        name: encode_chats(part, tokenizer, d.max_length, d.train_on, d.overlong)
        for name, part in (("train", train), ("validation", val), ("test", test))
    }
    info = {
        "source": str(d.train or f"built-in:{d.dataset}"),
        "train": len(train),
        "validation": len(val),
        "test": len(test),
        "dropped_duplicates": dropped,
        "truncated_train": encoded["train"][1]["truncated"],
        "dropped_overlong": sum(c["dropped"] for _, c in encoded.values()),
        "truncated_held_out": encoded["validation"][1]["truncated"] + encoded["test"][1]["truncated"],
        "trained_tokens_per_epoch": sum(sum(x != -100 for x in s["labels"]) for s in encoded["train"][0]),
    }
    if not encoded["train"][0]:
        raise TunelabError(
            f"{info['source']}: no training conversation left after checking lengths "
            f"(data.max_length={d.max_length}). Raise data.max_length."
        )
    # the data fingerprint of chats: the rendered tokens and their labels (template and masking included)
    fp = data_fingerprint(
        ((name, samples) for name, (samples, _) in encoded.items()), lambda s: [s["input_ids"], s["labels"]]
    )
    held_out = [prompt_and_reference(r["messages"]) for r in test[: cfg.eval.num_generate]]
    return LMData(
        as_rows(encoded["train"][0], d.max_length, d.packing, info["source"]),
        as_rows(encoded["validation"][0], d.max_length, False),
        as_rows(encoded["test"][0], d.max_length, False),
        fp,
        info,
        held_out,
    )


def lm_data(cfg: Config, tokenizer) -> LMData:
    """Raw documents -> max_length pieces; split by document; the training stream stops at the token budget."""
    return text_data(cfg, read_text_splits(cfg, causal_pieces(tokenizer, cfg.data.max_length)), cfg.data.packing)


def text_data(cfg: Config, splits, packing: bool) -> LMData:
    """Rows (packed or not) and run.json's data record from raw-text splits (lm here, mlm in story_mlm.py)."""
    d = cfg.data
    info = {
        "source": str(d.train or f"built-in:{d.dataset}"),
        "documents": splits.documents,
        "tokens": splits.tokens,
        "train": len(splits.train),
        "validation": len(splits.validation),
        "test": len(splits.test),
        "dropped_duplicates": splits.dropped_duplicates,
        "budget_reached": splits.budget_reached,
        "truncated_train": 0,
    }
    return LMData(
        as_rows(splits.train, d.max_length, packing, info["source"]),
        as_rows(splits.validation, d.max_length, False),
        as_rows(splits.test, d.max_length, False),
        splits.fingerprint,
        info,
    )


# ------------------------------------------------------------------ evaluation


def generate_eval(model, tokenizer, held_out: list[tuple[list[dict], str]], cfg: Config, precision: str) -> dict:
    """Greedy answers to held-out prompts: exact match, token F1, ROUGE-L, contains-answer (0–100), the samples."""
    gen = Generator.wrap(model, tokenizer, chat=True, precision=precision)
    was_training = model.training
    prompts = [p for p, _ in held_out]
    references = [r for _, r in held_out]
    predictions, lengths = gen.greedy_with_lengths(prompts, cfg.eval.max_new_tokens, cfg.eval.generate_batch_size)
    model.train(was_training)
    last_user = [next((m["content"] for m in reversed(p) if m["role"] == "user"), "") for p in prompts]
    return generation_metrics(predictions, references, lengths, cfg.eval.max_new_tokens) | {
        "samples": [
            {"prompt": u, "reference": r, "prediction": g} for u, r, g in zip(last_user, references, predictions)
        ]
    }


def comparison(metrics: dict) -> str:
    """The model card's base-vs-tuned section: perplexity on the test split, generation metrics, sample answers."""
    base, rows = metrics.get("base") or {}, base_vs_tuned(metrics)
    fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
    text = (
        "\n## Base model vs fine-tuned\n| | base | fine-tuned |\n|---|---|---|\n"
        + "\n".join(f"| {n} | {fmt(b)} | {fmt(t)} |" for n, b, t in rows)
        + "\n"
    )
    samples = (metrics.get("generation") or {}).get("samples")
    if samples:
        base_samples = {s["prompt"]: s["prediction"] for s in base.get("generation", {}).get("samples", [])}
        text += (
            "\n## Sample generations (held-out prompts, greedy)\n"
            + sample_table(
                [s["prompt"] for s in samples], [s["reference"] for s in samples], [s["prediction"] for s in samples]
            )
            + "\n"
        )
        if base_samples:
            text += (
                "\nBase model on the same prompts:\n"
                + sample_table(
                    [s["prompt"] for s in samples],
                    [s["reference"] for s in samples],
                    [base_samples.get(s["prompt"], "") for s in samples],
                )
                + "\n"
            )
    return text


# ------------------------------------------------------------------ helpers


def _check_method(cfg: Config) -> None:
    if cfg.method.name == "frozen" and cfg.method.unfreeze_top_layers == 0:
        raise TunelabError(
            "method frozen with unfreeze_top_layers: 0 trains only the output head, which causal LMs such as SmolLM2 "
            "tie to "
            "their input embeddings, so 'head only' is not offered for sft/lm. Set method.unfreeze_top_layers (e.g. "
            "4), or use lora or full."
        )
