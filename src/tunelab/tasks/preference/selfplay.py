"""The built-in `chatterbot_pairs`: preference pairs from real model output, in the manner of self-play fine-tuning
(SPIN, Chen et al. 2024): for each question of the chatterbot corpus, chosen = the corpus answer, rejected = the
starting model's own greedy answer. No preference data installs offline; this needs none.

The questions are split exactly as sft splits the chatterbot corpus (by prompt, same seed), so no test question is
seen in training. The answers are generated once, in batches, and cached by the model's fingerprint, the precision
and the length bound ($TUNELAB_CACHE/selfplay/...); a pair whose generated answer already equals the corpus answer
(after SQuAD normalisation) is dropped and counted."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Callable, Optional

from tunelab.config import Config
from tunelab.data.builtin import load_builtin
from tunelab.data.cache import cache_dir
from tunelab.data.splits import Splits
from tunelab.metrics.text import normalize_answer
from tunelab.tasks.lm.chat import chat_splits, prompt_and_reference

BUILTIN = {"chatterbot_pairs": "chatterbot"}  # built-in preference set -> the chat set whose questions it answers


def selfplay_splits(
    cfg: Config, model, tokenizer, model_hash: str, precision: str, on_batch: Optional[Callable[[int], None]] = None
) -> tuple[Splits, dict]:
    """(train/validation/test pair records {prompt, chosen, rejected, line, source}, info for run.json)."""
    from tunelab.tasks.lm.predictor import Generator

    chats, source = load_builtin(BUILTIN[cfg.data.dataset], "chat")
    splits = chat_splits(cfg, {"train": chats, "validation": None, "test": None})
    questions = {
        name: [prompt_and_reference(r["messages"]) for r in part]
        for name, part in (("train", splits.train), ("validation", splits.validation), ("test", splits.test))
    }
    bound = cfg.data.max_answer_tokens
    key = hashlib.sha256(f"{model_hash}|{precision}|{bound}".encode()).hexdigest()[:16]
    path = cache_dir() / "selfplay" / f"{cfg.data.dataset}-{key}.json"
    answers = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    todo = list(dict.fromkeys(_key(p) for part in questions.values() for p, _ in part if _key(p) not in answers))
    cached = not todo
    if todo:
        prompts = {_key(p): p for part in questions.values() for p, _ in part}
        generator = Generator.wrap(model, tokenizer, chat=True, precision=precision)
        was_training = model.training
        batch = cfg.eval.generate_batch_size
        for start in range(0, len(todo), batch * 4):  # saved as it goes: a killed run keeps what it generated
            chunk = todo[start : start + batch * 4]
            replies = generator.generate([prompts[k] for k in chunk], max_new_tokens=bound, batch_size=batch)
            answers |= dict(zip(chunk, replies))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(answers, ensure_ascii=False), encoding="utf-8")
            tmp.replace(path)
            if on_batch:
                on_batch(len(chunk))
        model.train(was_training)

    same = 0
    pairs: dict[str, list[dict]] = {}
    for name, part in questions.items():
        pairs[name] = []
        for i, (prompt, chosen) in enumerate(part):
            rejected = answers[_key(prompt)].strip()
            if normalize_answer(rejected) == normalize_answer(chosen) or not rejected:
                same += 1
                continue
            pairs[name].append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "line": None,
                                "source": f"built-in:{cfg.data.dataset}"})  # fmt: skip
    info = {"questions": sum(len(p) for p in questions.values()), "dropped_same_answer": same,
            "answers_cached": cached, "answers_from": source}  # fmt: skip
    return replace(splits, train=pairs["train"], validation=pairs["validation"], test=pairs["test"]), info


def _key(prompt: list[dict]) -> str:
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False)
