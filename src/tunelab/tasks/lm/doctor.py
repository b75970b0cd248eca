"""The generative families for `tunelab doctor`.

sft: conversations read as training reads them (bad ones recorded), split by prompt as the run splits them; a
conversation is compared by its prompt (text: the turns before the last reply, "role: content" per line) and labelled
by that reply, so one prompt with several answers shows up (as information: common in chat data); lengths are the
rendered conversation in the model's chat template; data.max_length truncates (or drops, data.overlong) a longer one.

lm, mlm: documents as training reads them, split by the seeded hash of their text; no labels; lengths are each
document's tokens, which training cuts into data.max_length pieces (nothing is lost).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tunelab.doctor.family import FamilyData
from tunelab.tasks.lm.chat import chat_files, chat_splits, ensure_chat_template, prompt_and_reference, render
from tunelab.tasks.lm.packing import packed_lengths
from tunelab.tasks.lm.text import document_splits, iter_documents


def _read_chats(cfg, problems: list) -> dict:
    files = chat_files(cfg, problems)
    for records in files.values():
        for r in records or []:
            prompt, reply = prompt_and_reference(r["messages"])
            r["text"] = "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
            r["label"] = reply
    return files


def _chat_lengths(records: list[dict], tokenizer, cfg) -> np.ndarray:
    ensure_chat_template(tokenizer)
    return np.array([len(render(tokenizer, r["messages"], cfg.data.train_on)["input_ids"]) for r in records],
                    dtype=np.int64)  # fmt: skip


def _read_documents(cfg, problems: list) -> dict:
    d = cfg.data
    read = lambda path: list(iter_documents(cfg, path, problems))  # noqa: E731
    return {"train": read(d.train), "validation": read(d.validation) if d.validation else None,
            "test": read(d.test) if d.test else None}  # fmt: skip


def _document_lengths(records: list[dict], tokenizer, cfg) -> np.ndarray:
    if not records:
        return np.zeros(0, dtype=np.int64)
    ids = tokenizer([r["text"] for r in records], add_special_tokens=False)["input_ids"]
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))


CHATS = FamilyData(read=_read_chats, splits=lambda cfg, files: chat_splits(cfg, files), lengths=_chat_lengths,
                   long="truncates", conflicts_are_problems=False, packs=packed_lengths, compares_base=True,
                   generates=lambda cfg: cfg.eval.num_generate)  # fmt: skip
DOCUMENTS = FamilyData(read=_read_documents, splits=document_splits, lengths=_document_lengths,
                       long="cuts into pieces", pieces=True, packs=packed_lengths, compares_base=True)  # fmt: skip
MLM_DOCUMENTS = replace(DOCUMENTS, packs=None)  # mlm: one [CLS] piece [SEP] per row, never packed
