"""Paraphrases written by a causal LM (the built-in SmolLM2-135M-Instruct, any local model, or an sft run), as
augmentation copies. Generated once and cached under $TUNELAB_CACHE/paraphrases/, keyed by the texts, the generator's
hash, the prompt, the sampling settings, the copies and the seed: the same recipe never generates twice. Each pass of
64 prompts is appended to a .partial.jsonl beside the cache file as it finishes, and seeded by (seed, pass), so a run
killed while generating goes on from the passes it had and writes the same paraphrases.

The generator is the sft family's predictor, which the registry names (this room never imports a task).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tunelab.data.cache import cache_dir
from tunelab.registry import TASKS, load_object
from tunelab.runs.rundir import RunDir
from tunelab.training.progress import Bar

CHUNK = 64  # prompts per decoding pass (fewer, wider passes) and per saved piece of a partial generation
VERSION = 2  # how prompts are ordered into passes and seeded: part of the key


def paraphrases(texts: list[str], cfg, copies: int, seed: int, show_progress: bool = False) -> list[list[str]]:
    """`copies` paraphrases of each text (cfg: data.augment.paraphrase); a paraphrase that comes back empty is the
    text itself. The global random generators are left as they were, so a run that generates and one that reads the
    cache train the same."""
    key = hashlib.sha256(json.dumps([texts, _generator_id(cfg.model), cfg.prompt, cfg.temperature,
                                     cfg.max_new_tokens, copies, seed, VERSION]).encode()).hexdigest()[:16]  # fmt: skip
    path = cache_dir() / "paraphrases" / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))["paraphrases"]
    import torch

    prompts = [cfg.prompt.format(text=t) for t in texts for _ in range(copies)]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths in one pass: less padding
    passes = [order[start : start + CHUNK] for start in range(0, len(order), CHUNK)]
    partial = path.with_suffix(".partial.jsonl")
    done = _read_partial(partial, [len(p) for p in passes])
    replies = [""] * len(prompts)
    generator = None
    path.parent.mkdir(parents=True, exist_ok=True)
    with Bar("paraphrase", len(prompts), enabled=show_progress) as bar, torch.random.fork_rng():
        for n, idx in enumerate(passes):
            if n not in done:
                generator = generator or _generator(cfg.model)
                pass_seed = int.from_bytes(hashlib.sha256(f"{seed}/{n}".encode()).digest()[:4], "little")
                done[n] = generator.generate([prompts[i] for i in idx], max_new_tokens=cfg.max_new_tokens,
                                             temperature=cfg.temperature, seed=pass_seed, batch_size=CHUNK)  # fmt: skip
                with partial.open("a", encoding="utf-8") as f:  # one whole line per write: appends do not interleave
                    f.write(json.dumps({"pass": n, "replies": done[n]}, ensure_ascii=False) + "\n")
            for i, reply in zip(idx, done[n]):
                replies[i] = reply
            bar.update(min(len(prompts), (n + 1) * CHUNK))
    out = [[_clean(r) or t for r in replies[i * copies : (i + 1) * copies]] for i, t in enumerate(texts)]
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"texts": texts, "paraphrases": out}, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    partial.unlink(missing_ok=True)
    return out


def _read_partial(partial: Path, sizes: list[int]) -> dict[int, list[str]]:
    """The passes a killed generation had finished: {pass: replies}. A torn last line, or a pass of the wrong size,
    is generated again."""
    done: dict[int, list[str]] = {}
    if not partial.exists():
        return done
    for line in partial.read_text(encoding="utf-8").splitlines():
        try:
            piece = json.loads(line)
            n, replies = int(piece["pass"]), piece["replies"]
        except (ValueError, KeyError, TypeError):
            continue
        if 0 <= n < len(sizes) and isinstance(replies, list) and len(replies) == sizes[n]:
            done[n] = replies
    return done


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
