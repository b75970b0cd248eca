"""`tunelab data preview`: the first examples of a recipe's training data, rendered exactly as training sees them."""

from __future__ import annotations

from itertools import islice

from tunelab.config import Config
from tunelab.errors import TunelabError


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
    raise TunelabError(
        f"data preview shows sft, lm and mlm data; task '{cfg.task}' reads labelled rows, which `head` shows as well."
    )
