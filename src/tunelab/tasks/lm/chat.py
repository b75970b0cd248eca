"""Chat data for task `sft`: read conversations, check them, render them with the model's chat template, mask.

Three file layouts, detected from the columns (or set with data.format):

    messages          {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}
    prompt_response   {"prompt": ..., "response": ...}            (optional "system")
    alpaca            {"instruction": ..., "input": ..., "output": ...}

Rendering uses the tokenizer's own chat template. The tokens of each assistant reply are found by rendering
the conversation up to that reply (with the generation prompt) and up to its end: the characters in between
are the reply plus its end-of-turn marker, and the tokens whose characters fall there are the trained ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from tunelab.config import Config
from tunelab.data import IGNORE
from tunelab.data.builtin import load_builtin
from tunelab.data.readers import read_table, record
from tunelab.data.splits import Splits, dedupe, split_groups
from tunelab.errors import TunelabError, where

ROLES = ("system", "user", "assistant")

# For models without a chat template (base models): ChatML, ending each turn with the tokenizer's EOS.
FALLBACK_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + eos_token + "
    "'\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


# ------------------------------------------------------------------ reading


def detect_format(columns: list[str], path) -> str:
    cols = set(columns)
    if "messages" in cols:
        return "messages"
    if {"prompt", "response"} <= cols:
        return "prompt_response"
    if {"instruction", "output"} <= cols:
        return "alpaca"
    raise TunelabError(
        f"{path}: cannot tell the chat format from the columns ({', '.join(columns)}). Use a 'messages' column "
        "(OpenAI chat format), "
        f"'prompt' and 'response', or Alpaca 'instruction' / 'input' / 'output'; or set data.format."
    )


def read_chats(path: Path, fmt: str = "auto", problems: Optional[list] = None) -> list[dict]:
    """Records {"messages": [...], "line", "source"} from a JSONL/JSON/CSV/Parquet file, every conversation checked.
    With `problems` (tunelab doctor), a bad conversation is recorded there and skipped."""
    table = read_table(path, problems)
    fmt = detect_format(table.columns, path) if fmt == "auto" else fmt
    records = []
    for row in table.rows:
        try:
            messages = to_messages(row.values, fmt, path, row.line)
            check_messages(messages, path, row.line)
        except TunelabError as e:
            if problems is None:
                raise
            record(problems, e, "bad_chat")
            continue
        records.append({"messages": messages, "line": row.line, "source": str(path)})
    if not records and problems is None:
        raise TunelabError(f"{path}: no conversations. Add examples.")
    return records


def chat_files(cfg: Config, problems: Optional[list] = None) -> dict[str, Optional[list[dict]]]:
    """Each file's conversations as given (the built-in set for train when no file is named; None: no file)."""
    d = cfg.data
    train = load_builtin(d.dataset, "chat")[0] if d.train is None else read_chats(d.train, d.format, problems)
    return {"train": train,
            "validation": read_chats(d.validation, d.format, problems) if d.validation else None,
            "test": read_chats(d.test, d.format, problems) if d.test else None}  # fmt: skip


def chat_splits(cfg: Config, files: Optional[dict] = None) -> Splits:
    """Deduplicated, then split by prompt (one prompt's answers never straddle splits); given files take their
    split's place; data.limit caps train."""
    d = cfg.data
    files = files or chat_files(cfg)
    records, dropped = dedupe(files["train"], key=chat_key) if d.dedupe else (files["train"], 0)
    fractions = (0.0 if d.validation else d.validation_fraction, 0.0 if d.test else d.test_fraction)
    train, val, test = split_groups(
        records, fractions, d.split_seed, key=lambda r: chat_key({"messages": prompt_and_reference(r["messages"])[0]})
    )
    val = files["validation"] if files["validation"] is not None else val
    test = files["test"] if files["test"] is not None else test
    return Splits(train[: d.limit] if d.limit else train, val, test, dropped)


def chat_key(r: dict) -> str:
    return json.dumps(r["messages"], sort_keys=True, ensure_ascii=False)


def to_messages(values: dict, fmt: str, path, line) -> list[dict]:
    def text(key: str, required: bool = True) -> str:
        value = values.get(key)
        if value is None or (isinstance(value, float) and value != value):  # None or NaN (empty CSV/Parquet cell)
            value = ""
        if required and not str(value).strip():
            raise TunelabError(
                f"{where(path, line)}: empty '{key}'. Every example needs one; fill it in or remove the line."
            )
        return str(value)

    if fmt == "messages":
        messages = values.get("messages")
        if isinstance(messages, str):  # CSV cell holding JSON
            try:
                messages = json.loads(messages)
            except json.JSONDecodeError:
                raise TunelabError(
                    f"{where(path, line)}: 'messages' is not a JSON list of {{role, content}} objects."
                ) from None
        if not isinstance(messages, list):
            raise TunelabError(
                f'{where(path, line)}: \'messages\' must be a list of {{"role": ..., "content": ...}} objects, '
                f"got {type(messages).__name__}."
            )
        return [dict(m) if isinstance(m, dict) else m for m in messages]
    if fmt == "prompt_response":
        system = text("system", required=False) if "system" in values else ""
        return ([{"role": "system", "content": system}] if system.strip() else []) + [
            {"role": "user", "content": text("prompt")},
            {"role": "assistant", "content": text("response")},
        ]
    extra = text("input", required=False)
    prompt = text("instruction") + (f"\n\n{extra}" if extra.strip() else "")
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": text("output")}]


def check_messages(messages: list, path, line) -> None:
    """Empty conversations, unknown roles, empty or non-text content, and chats without a reply are errors."""
    at = where(path, line)
    if not messages:
        raise TunelabError(f"{at}: empty 'messages'. A conversation needs at least a user turn and an assistant reply.")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise TunelabError(
                f'{at}: message {i + 1} is not a {{"role": ..., "content": ...}} object: {str(m)[:80]!r}.'
            )
        if m["role"] not in ROLES:
            raise TunelabError(f"{at}: message {i + 1} has unknown role {m['role']!r}. Roles are {', '.join(ROLES)}.")
        if not isinstance(m["content"], str) or not m["content"].strip():
            raise TunelabError(
                f"{at}: message {i + 1} ({m['role']}) has empty or non-text content. Fill it in or remove the message."
            )
    if not any(m["role"] == "assistant" for m in messages):
        raise TunelabError(
            f"{at}: no assistant turn, so nothing would be learned from it. Add the reply or remove the example."
        )


# ------------------------------------------------------------------ rendering and masking


def ensure_chat_template(tokenizer) -> bool:
    """Give a tokenizer without a chat template the ChatML fallback; True when it had its own."""
    if getattr(tokenizer, "chat_template", None):
        return True
    tokenizer.chat_template = FALLBACK_TEMPLATE
    return False


def render(tokenizer, messages: list[dict], train_on: str = "assistant") -> dict:
    """input_ids and labels (IGNORE where not trained) of one conversation rendered with the chat template.

    The label of the first token is always IGNORE (nothing predicts it), so a packed row trains exactly the
    tokens the unpacked samples train.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = assistant_spans(tokenizer, messages, text) if train_on == "assistant" else [(0, len(text))]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    labels = [
        tok if any(s <= start < e for s, e in spans) and end > start else IGNORE
        for tok, (start, end) in zip(ids, enc["offset_mapping"])
    ]
    labels[0] = IGNORE
    return {"input_ids": ids, "labels": labels}


def assistant_spans(tokenizer, messages: list[dict], text: str) -> list[tuple[int, int]]:
    """Character spans of the assistant replies (with their end-of-turn marker) in the rendered `text`."""
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True) if i else ""
        through = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (text.startswith(before) and text.startswith(through) and len(through) > len(before)):
            raise TunelabError(
                "The model's chat template does not render conversations incrementally (an earlier turn renders "
                "differently "
                "once later turns follow), so the assistant tokens cannot be located. Set data.train_on: all."
            )
        spans.append((len(before), len(through)))
    return spans


def prompt_and_reference(messages: list[dict]) -> tuple[list[dict], str]:
    """For generation-based evaluation: the conversation before the last assistant reply, and that reply."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


def encode_chats(
    records: list[dict], tokenizer, max_length: int, train_on: str, overlong: str
) -> tuple[list[dict], dict]:
    """Rendered samples, and counts of what happened to over-long ones (truncated / dropped)."""
    samples, counts = [], {"truncated": 0, "dropped": 0}
    for r in records:
        s = render(tokenizer, r["messages"], train_on)
        if len(s["input_ids"]) > max_length:
            if overlong == "error":
                raise TunelabError(
                    f"{where(r.get('source', 'the data'), r.get('line'))}: the rendered conversation has "
                    f"{len(s['input_ids'])} tokens, more than "
                    f"data.max_length={max_length}. Raise data.max_length, shorten it, or set data.overlong: truncate "
                    "/ drop."
                )
            s = {k: v[:max_length] for k, v in s.items()}
            if overlong == "drop" or all(x == IGNORE for x in s["labels"]):
                counts["dropped"] += 1
                continue
            counts["truncated"] += 1
        samples.append(s)
    return samples, counts


def preview(tokenizer, messages: list[dict], train_on: str = "assistant", markup: bool = True) -> str:
    """The rendered conversation with trained tokens marked: [bold green] (rich markup) or «...» when markup is off."""
    from rich.markup import escape

    s = render(tokenizer, messages, train_on)
    out, run, trained = [], [], None
    for tok, label in zip(s["input_ids"], s["labels"]):
        is_trained = label != IGNORE
        if trained is not None and is_trained != trained:
            out.append(_segment("".join(run), trained, markup, escape))
            run = []
        run.append(tokenizer.decode([tok]))
        trained = is_trained
    out.append(_segment("".join(run), bool(trained), markup, escape))
    return "".join(out)


def _segment(text: str, trained: bool, markup: bool, escape) -> str:
    if markup:
        return f"[bold green]{escape(text)}[/bold green]" if trained else f"[dim]{escape(text)}[/dim]"
    return f"«{text}»" if trained else text
