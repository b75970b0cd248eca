"""Preference tuning of a chat model (task `preference`): DPO, IPO, ORPO or SimPO, with no second model in memory.

data      -> the user's pairs (prompt, chosen, rejected), or the built-in chatterbot_pairs (the starting model's own
             answers as the rejected ones, selfplay.py); split by prompt; both answers rendered after the same chat
             template, scored on exactly their answer tokens; over-long prompts cut from the left (counted)
model     -> a chat model (the built-in SmolLM2-135M-Instruct, any model, or an sft run's model/); method lora or full
reference -> DPO/IPO: the starting model's log-probabilities of every answer, computed once (LoRA: adapter off) and
             kept in the run directory (reference.py)
before    -> the starting model on the test pairs (reward accuracy, answer log-probabilities) and its greedy answers to
             held-out questions (token F1, exact match, ROUGE-L against the chosen answers)
fit       -> the shared loop; the loss per pair (losses.py), the pair as the unit
after     -> the best weights measured the same way; model/ (merged) + adapter/, served and exported as sft runs are
"""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.config import Config
from tunelab.data.fingerprint import data_fingerprint
from tunelab.errors import TunelabError
from tunelab.methods import apply_method
from tunelab.models.fast_paths import apply_fast_paths
from tunelab.models.load import load_causal_lm, load_tokenizer, plain, resolve
from tunelab.registry import TASKS
from tunelab.runs.rundir import RunDir
from tunelab.tasks.common import Story
from tunelab.tasks.lm.chat import ensure_chat_template
from tunelab.tasks.lm.story import fit_and_report
from tunelab.tasks.preference.config import NEEDS_REFERENCE
from tunelab.tasks.preference.data import preference_files, preference_splits
from tunelab.tasks.preference.encode import encode_pairs
from tunelab.tasks.preference.reference import attach_reference, reference_key, reference_logps
from tunelab.tasks.preference.selfplay import BUILTIN, selfplay_splits
from tunelab.tasks.preference.spec import PreferenceSpec

BASE_ONLY = ("dpo_reward_accuracy", "reward_margin")  # 0 by definition for the starting model: not in its row


@dataclass
class PairData:
    train: list[dict]  # encoded pairs: chosen_ids/labels, rejected_ids/labels, length (+ reference once attached)
    validation: list[dict]
    test: list[dict]
    held_out: list[tuple[list[dict], str]]  # test prompts and their chosen answers, for greedy answers
    fingerprint: str
    info: dict


def train(cfg: Config, run: RunDir, resume=False, show_progress=True, on_step=None, on_validation=None) -> dict:
    story = Story.set_up(cfg, run, resume, show_progress, on_step or (lambda step: None), on_validation)
    _check(cfg)
    p = cfg.preference

    # ---- the starting model, and the pairs (the built-in set asks the model for its own answers)
    source = resolve(cfg.model)
    local = plain(source)  # GGUF: de-quantised once, then cached
    tokenizer = load_tokenizer(local)
    own_template = ensure_chat_template(tokenizer)
    model = load_causal_lm(local, cfg.model)
    model_hash = source.content_hash()
    data = pair_data(cfg, model, tokenizer, model_hash, story.precision)
    data.info["chat_template"] = "the model's own" if own_template else "fallback ChatML (the model has none)"

    # ---- method; the reference log-probabilities (DPO, IPO), computed once from the starting model
    model = apply_method(model, cfg.method, TASKS[cfg.task].peft_task)
    apply_fast_paths(model, cfg.train)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    spec = PreferenceSpec(pad_id, p.loss, p.beta, p.gamma, p.orpo_weight, p.sft_weight)

    def reference_pass() -> None:  # after the run is recorded, before the base model is measured
        key = reference_key(model_hash, data.fingerprint, story.precision)
        splits = {"train": data.train, "validation": data.validation, "test": data.test}
        compute = lambda rows: reference_logps(model, rows, pad_id, cfg.eval.batch_size, story.precision)  # noqa: E731
        read_back = attach_reference(run, key, splits, compute, write=story.rank0)
        if story.rank0:
            run.update_info(reference={"file": "reference_logps.npz", "key": key, "read_back": read_back,
                                       "how": "the starting model (adapter off)" if cfg.method.name == "lora"
                                       else "the starting model, before training"})  # fmt: skip

    # ---- the shared language-model story: base measured, fit, best measured, outputs (merged model/ as sft's)
    return fit_and_report(
        story, model, tokenizer, spec, data, source,
        preprocessing={"max_length": cfg.data.max_length, "precision": story.precision},
        record={"preference": p.model_dump()},
        before_base=reference_pass if NEEDS_REFERENCE[p.loss] else None,
        not_in_base=BASE_ONLY,
    )  # fmt: skip


def pair_data(cfg: Config, model, tokenizer, model_hash: str, precision: str) -> PairData:
    """Pairs -> split by prompt -> encoded (answer-token labels, prompts cut from the left) -> run.json's record."""
    d = cfg.data
    if d.train is None:
        if d.dataset not in BUILTIN:
            raise TunelabError(
                f"Unknown built-in preference dataset '{d.dataset}'. Built-in: {', '.join(BUILTIN)}; or give your "
                "own pairs with data.train / --train (prompt, chosen, rejected columns)."
            )
        splits, made = selfplay_splits(cfg, model, tokenizer, model_hash, precision)
    else:
        splits, made = preference_splits(cfg, preference_files(cfg)), {}
    parts = {"train": splits.train, "validation": splits.validation, "test": splits.test}
    encoded = {name: encode_pairs(part, tokenizer, d.max_length) for name, part in parts.items()}
    source = str(d.train or f"built-in:{d.dataset}")
    if not encoded["train"][0]:
        raise TunelabError(
            f"{source}: no training pair left after checking lengths (data.max_length={d.max_length}). Raise "
            "data.max_length, or add pairs."
        )
    info = {
        "source": source,
        "train": len(encoded["train"][0]),
        "validation": len(encoded["validation"][0]),
        "test": len(encoded["test"][0]),
        "dropped_duplicates": splits.dropped_duplicates,
        "prompts_cut": sum(c["prompts_cut"] for _, c in encoded.values()),
        "dropped_overlong": sum(c["dropped_overlong"] for _, c in encoded.values()),
        **made,
    }
    fp = data_fingerprint(
        ((name, rows) for name, (rows, _) in encoded.items()),
        lambda e: [e["chosen_ids"], e["chosen_labels"], e["rejected_ids"], e["rejected_labels"]],
    )
    held_out = [(r["prompt"], r["chosen"]) for r in splits.test[: cfg.eval.num_generate]]
    return PairData(encoded["train"][0], encoded["validation"][0], encoded["test"][0], held_out, fp, info)


def _check(cfg: Config) -> None:
    if cfg.method.name == "frozen":
        raise TunelabError(
            "method frozen is not offered for preference tuning: use lora (the default; the reference is the same "
            "model with its adapter off) or full (the reference log-probabilities are computed once before training)."
        )
