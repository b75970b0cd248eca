"""`tunelab data preview`: the first examples of a recipe's training data, rendered exactly as training sees them."""

from __future__ import annotations

from itertools import islice

from tunelab.config import Config
from tunelab.errors import TunelabError


def marks_trained_tokens(cfg: Config) -> bool:
    """Whether the preview marks the tokens training learns from: only chats (sft) train on part of each example
    (data.train_on); every other task learns from all of it."""
    return cfg.task == "sft"


def preview_examples(cfg: Config, n: int = 2, markup: bool = True) -> list[str]:
    from tunelab.models.load import load_tokenizer, plain, resolve

    tokenizer = load_tokenizer(plain(resolve(cfg.model)))
    if cfg.task == "sft":
        from tunelab.data.builtin import load_builtin
        from tunelab.tasks.lm.chat import ensure_chat_template, preview, read_chats

        ensure_chat_template(tokenizer)
        records = (
            read_chats(cfg.data.train, cfg.data.format) if cfg.data.train else load_builtin(cfg.data.dataset, "chat")[0]
        )
        return [preview(tokenizer, r["messages"], cfg.data.train_on, markup) for r in records[:n]]
    if cfg.task in ("lm", "mlm"):
        from tunelab.tasks.lm.text import iter_documents

        shown = []
        for doc in islice(iter_documents(cfg, cfg.data.train), n):
            ids = tokenizer(doc["text"], truncation=True, max_length=cfg.data.max_length)["input_ids"]
            shown.append(
                tokenizer.decode(ids)
                + f"\n[{len(ids)} tokens shown of one document; documents are cut into pieces of {cfg.data.max_length}]"
            )
        return shown
    if cfg.task in ("classification", "multilabel", "regression"):
        return _labelled(cfg, tokenizer, n)
    raise TunelabError(
        f"data preview shows classification, sft, lm and mlm data; task '{cfg.task}' reads tagged sentences, which "
        "`head` shows as well."
    )


def _labelled(cfg: Config, tokenizer, n: int) -> list[str]:
    """The first training examples of the run's split as the model reads them (tokens, truncated at max_length),
    each with the copies data.augment makes of it."""
    from tunelab.augment import augment
    from tunelab.tasks.classify.data import read_records

    train = read_records(cfg).train[:n]
    augmented, _ = augment(train, cfg.data.augment, cfg.data.split_seed)
    shown = []
    for r in train:
        ids = tokenizer(r["text"], r.get("text_pair"), truncation=True, max_length=cfg.data.max_length)["input_ids"]
        lines = [f"{r['text']}  -> {r['label']!r}   ({r.get('source')}, line {r.get('line')}; {len(ids)} tokens)"]
        lines += [f"  {c['augmentation']}: {c['text']}" for c in augmented if c is not r and c.get("augmented_from")
                  == r.get("line") and c.get("source") == r.get("source")]  # fmt: skip
        shown.append("\n".join(lines))
    return shown
