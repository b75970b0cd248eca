"""Text-to-text fine-tuning: `summarization` and `translation`, for decoder-only and encoder-decoder models.

kind   -> from the model's config (registry.model_class): AutoModelForSeq2SeqLM or AutoModelForCausalLM
data   -> pairs read, prompted (data.prompt), deduplicated on (prompt, target), split (a built-in's own split);
          sources and targets cut to their token limits (counted)
model  -> the pretrained model with the method (LoRA: PEFT's SEQ_2_SEQ_LM or CAUSAL_LM)
before -> the base model (zero-shot) on the test split: perplexity of the targets and every generation metric, once
fit    -> the shared loop; each validation also generates a fixed sample and scores it (the best checkpoint by
          rougeL for summaries, chrf for translations)
after  -> the best weights generate the whole test split: metrics.json, predictions.jsonl, model/ with its prompt
          template (prompt_template.json), the card with base vs tuned and examples side by side
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tunelab.config import Config
from tunelab.data.fingerprint import data_fingerprint
from tunelab.errors import TunelabError
from tunelab.methods import adapters_off, apply_method, count_parameters
from tunelab.models.fast_paths import apply_fast_paths
from tunelab.models.load import load_model_config, load_text_generator, load_tokenizer, plain, resolve
from tunelab.registry import model_class, peft_task
from tunelab.runs.rundir import RunDir
from tunelab.tasks.common import Story, check_same_data, selection_metric
from tunelab.tasks.lm.packing import as_rows
from tunelab.tasks.lm.spec import CausalLM
from tunelab.tasks.seq2seq.data import pair_splits, template
from tunelab.tasks.seq2seq.encode import PROMPT_FILE, PromptFormat, encode
from tunelab.tasks.seq2seq.generation import Options, generate
from tunelab.tasks.seq2seq.metrics import score
from tunelab.tasks.seq2seq.report import comparison
from tunelab.tasks.seq2seq.spec import EncoderDecoderLM, Text2TextSpec
from tunelab.training.progress import Bar

EXAMPLES = 5  # test records shown side by side (base vs tuned) in the card and the report


@dataclass
class Text2TextData:
    train: list[dict]  # rows for the loop
    validation: list[dict]
    test: list[dict]
    validation_items: list[dict]  # what generation scores: prompt_ids, reference, source, prompt
    test_items: list[dict]
    fingerprint: str
    info: dict  # for run.json: sizes, cuts


def train(cfg: Config, run: RunDir, resume=False, show_progress=True, on_step=None, on_validation=None) -> dict:
    story = Story.set_up(cfg, run, resume, show_progress, on_step or (lambda step: None), on_validation)

    # ---- the model's kind, from its config
    source = resolve(cfg.model)
    local = plain(source)  # GGUF: de-quantised once, then cached
    tokenizer = load_tokenizer(local)
    model_config = load_model_config(local)
    auto_class = model_class(cfg.task, model_config)
    encoder_decoder = auto_class == "AutoModelForSeq2SeqLM"
    _check_method(cfg, encoder_decoder)
    chat = not encoder_decoder and bool(getattr(tokenizer, "chat_template", None))
    fmt = PromptFormat(template(cfg), encoder_decoder, chat, cfg.data.max_source_tokens)

    # ---- data
    data = text2text_data(cfg, tokenizer, fmt)
    data.info |= {"model_kind": "encoder-decoder" if encoder_decoder else "decoder-only", "model_class": auto_class}

    # ---- model and method
    model = load_text_generator(local, cfg.model, auto_class)
    model = apply_method(model, cfg.method, peft_task(cfg.task, model_config))
    apply_fast_paths(model, cfg.train)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    options = Options.of(cfg.eval)
    sample = data.validation_items[: cfg.eval.num_generate]

    def generated(m, items: list[dict], what: str) -> tuple[dict, list[str]]:
        """Every generation metric of `m` on `items`, and its outputs."""
        with Bar(what, len(items), enabled=story.show_progress and story.rank0 and len(items) > 0) as bar:
            done = []
            outputs, lengths = generate(
                m,
                tokenizer,
                [x["prompt_ids"] for x in items],
                options,
                encoder_decoder,
                story.precision,
                on_batch=lambda n: (done.append(n), bar.update(sum(done))),
            )
        references = [x["reference"] for x in items]
        return score(outputs, references, lengths, options.max_new_tokens, cfg.eval.bleu_tokenize), outputs

    def validate(m) -> dict:
        return generated(m, sample, "generating (validation)")[0] if sample else {}

    inner = EncoderDecoderLM(pad_id) if encoder_decoder else CausalLM(pad_id)
    spec = Text2TextSpec(inner, validate)
    selection = _selection(cfg, spec)
    check_same_data(run, data.fingerprint, story.resume)
    trainable, total = count_parameters(model)
    story.record_start(
        source,
        selection,
        data=data.info | {"fingerprint": data.fingerprint},
        method=cfg.method.model_dump(),
        trainable_params=trainable,
        total_params=total,
        prompt=fmt.as_dict(),
        generation=options.__dict__,
        preprocessing={
            "max_source_tokens": cfg.data.max_source_tokens,
            "max_target_tokens": cfg.data.max_target_tokens,
            "precision": story.precision,
            "packing": cfg.data.packing and not encoder_decoder,
        },
    )

    def measure(m, what: str) -> tuple[dict, list[str]]:
        """The loss pass and the whole test split generated: ({"test": metrics}, outputs)."""
        test = story.test(m, spec, data.test)
        if not data.test_items or story.pruned or not story.rank0:
            return {"test": test}, []
        scores, outputs = generated(m, data.test_items, what)
        return {"test": test | scores}, outputs

    # ---- the base model (zero-shot), measured once: a resumed run keeps it (run.json)
    base = run.info.get("base_eval")
    if cfg.eval.compare_base and base is None:
        with adapters_off(model):  # a fresh adapter adds zero: the same outputs, less work
            base, base_outputs = measure(model, "generating (base model, test)")
        base["examples"] = base_outputs[:EXAMPLES]
        if story.rank0:
            run.update_info(base_eval=base)

    # ---- train, then the best weights measured once
    model, result = story.fit_best(model, spec, data.train, data.validation, selection)
    tuned, outputs = measure(model, "generating (test)")
    metrics = {"test": tuned["test"], "base": {"test": (base or {}).get("test", {})}, **result.metrics()}

    # ---- outputs
    if story.rank0:
        if outputs:
            with open(run / "predictions.jsonl", "w", encoding="utf-8") as f:
                for item, prediction in zip(data.test_items, outputs):
                    row = {"source": item["source"], "reference": item["reference"], "prediction": prediction}
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        examples = _examples(data.test_items, (base or {}).get("examples", []), outputs)
        metrics["examples"] = examples
        story.outputs(model, tokenizer, metrics, result, selection, card_extra=comparison(metrics, fmt))
        if (run / "model").exists():
            (run / "model" / PROMPT_FILE).write_text(json.dumps(fmt.as_dict(), indent=2) + "\n", encoding="utf-8")
    story.accelerator.wait_for_everyone()
    return metrics


# ------------------------------------------------------------------ data


def text2text_data(cfg: Config, tokenizer, fmt: PromptFormat) -> Text2TextData:
    """Pairs -> split -> encoded rows (decoder-only: packed when data.packing) and the items generation scores."""
    d = cfg.data
    splits = pair_splits(cfg)
    encoded = {
        name: encode(part, tokenizer, fmt, d.max_target_tokens)
        for name, part in (("train", splits.train), ("validation", splits.validation), ("test", splits.test))
    }
    if not encoded["train"][0]:
        raise TunelabError(f"{d.train or 'built-in:' + str(d.dataset)}: no training pairs. Add pairs to the file.")
    info = {
        "source": str(d.train or f"built-in:{d.dataset}"),
        "train": len(splits.train),
        "validation": len(splits.validation),
        "test": len(splits.test),
        "dropped_duplicates": splits.dropped_duplicates,
        "sources_cut": {name: counts["sources_cut"] for name, (_, _, counts) in encoded.items()},
        "targets_cut": {name: counts["targets_cut"] for name, (_, _, counts) in encoded.items()},
        "template": fmt.template,
        "trained_tokens_per_epoch": sum(sum(x != -100 for x in e["labels"]) for e in encoded["train"][0]),
    }
    fp = data_fingerprint(
        ((name, rows) for name, (rows, _, _) in encoded.items()), lambda e: [e["input_ids"], e["labels"]]
    )

    def rows(name: str, packing: bool = False) -> list[dict]:
        examples = encoded[name][0]
        if fmt.encoder_decoder:
            return examples
        block = max([d.max_length, *(len(e["input_ids"]) for e in examples)])
        return as_rows(examples, block, packing, info["source"])

    return Text2TextData(
        rows("train", d.packing),
        rows("validation"),
        rows("test"),
        encoded["validation"][1],
        encoded["test"][1],
        fp,
        info,
    )


def _examples(items: list[dict], base_outputs: list[str], outputs: list[str]) -> list[dict]:
    return [
        {
            "source": it["source"],
            "reference": it["reference"],
            "base": base_outputs[i] if i < len(base_outputs) else None,
            "tuned": outputs[i],
        }
        for i, it in enumerate(items[: min(EXAMPLES, len(outputs))])
    ]


# ------------------------------------------------------------------ checks


def _selection(cfg: Config, spec) -> tuple[str, bool]:
    """The recipe's metric; with no generation at validation (eval.num_generate 0), `auto` falls back to perplexity,
    and a generation metric named explicitly is an error."""
    metric, higher = selection_metric(cfg, spec)
    if cfg.eval.num_generate == 0 and metric not in ("loss", "perplexity"):
        if cfg.eval.metric != "auto":
            raise TunelabError(
                f"eval.metric '{metric}' is measured by generating at each validation, and eval.num_generate is 0. "
                "Set eval.num_generate (e.g. 64), or pick the checkpoint by perplexity."
            )
        return "perplexity", False
    return metric, higher


def _check_method(cfg: Config, encoder_decoder: bool) -> None:
    if cfg.method.name == "frozen" and cfg.method.unfreeze_top_layers == 0:
        raise TunelabError(
            "method frozen with unfreeze_top_layers: 0 trains only the output head, which these models tie to their "
            "input embeddings, so 'head only' is not offered for summarization/translation. Set "
            "method.unfreeze_top_layers (e.g. 4), or use lora or full."
        )
