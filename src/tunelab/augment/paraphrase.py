"""Paraphrases written by a causal LM (the built-in SmolLM2-135M-Instruct, any local model, or an sft run), as
augmentation copies. Generated once and cached under $TUNELAB_CACHE/paraphrases/, keyed by the texts, the generator's
hash, the prompt, the sampling settings, the copies and the seed: the same recipe never generates twice.

The generator is the sft family's predictor, which the registry names (this room never imports a task).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tunelab.data.cache import cache_dir
from tunelab.registry import TASKS, load_object
from tunelab.runs.rundir import RunDir


def paraphrases(texts: list[str], cfg, copies: int, seed: int) -> list[list[str]]:
    """`copies` paraphrases of each text (cfg: data.augment.paraphrase); a paraphrase that comes back empty is the
    text itself."""
    key = hashlib.sha256(json.dumps([texts, _generator_id(cfg.model), cfg.prompt, cfg.temperature,
                                     cfg.max_new_tokens, copies, seed]).encode()).hexdigest()[:16]  # fmt: skip
    path = cache_dir() / "paraphrases" / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))["paraphrases"]
    generator = _generator(cfg.model)
    prompts = [cfg.prompt.format(text=t) for t in texts for _ in range(copies)]
    replies = generator.generate(prompts, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, seed=seed,
                                 batch_size=64)  # fewer, wider decoding passes  # fmt: skip
    out = [[_clean(r) or t for r in replies[i * copies : (i + 1) * copies]] for i, t in enumerate(texts)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"texts": texts, "paraphrases": out}, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return out


def _clean(reply: str) -> str:
    """The first line of the reply, without a "Paraphrase:" lead-in or surrounding quotes."""
    line = reply.strip().split("\n")[0].strip()
    if line.lower().startswith("paraphrase:"):
        line = line.split(":", 1)[1].strip()
    return line.strip('"').strip()


def _is_run(name: str) -> bool:
    return (Path(name) / "run.json").is_file()


def _generator_id(name: str) -> str:
    """What identifies the generator's weights: a run's model hash, a local model's weight hash, or a hub name."""
    if _is_run(name):
        return RunDir(Path(name)).model_hash()
    from tunelab.config import ModelConfig
    from tunelab.models.load import resolve

    source = resolve(ModelConfig(name=name))
    return source.content_hash() or name


def _generator(name: str):
    Generator = load_object(TASKS["sft"].predictor)
    if _is_run(name):
        return Generator(RunDir.open(Path(name)))
    import torch

    from tunelab.config import ModelConfig
    from tunelab.models.load import load_causal_lm, load_tokenizer, plain, resolve
    from tunelab.training.distributed import quiet_libraries
    from tunelab.training.precision import resolve as resolve_precision

    quiet_libraries()  # no transformers load report or progress bars
    config = ModelConfig(name=name)
    local = plain(resolve(config))
    tokenizer = load_tokenizer(local)
    model = load_causal_lm(local, config)
    chat = bool(getattr(tokenizer, "chat_template", None))
    return Generator.wrap(model, tokenizer, chat=chat, precision=resolve_precision("auto", torch.device("cpu")))
