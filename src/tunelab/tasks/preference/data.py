"""Preference pairs: a prompt, the answer preferred (chosen) and the one not (rejected), read from a file and checked.

    {"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "Lyon."}
    {"prompt": [{"role": "system", ...}, {"role": "user", ...}], "chosen": {"role": "assistant", "content": ...}, ...}
    {"prompt": "...", "chosen": [{"role": "user", ...}, {"role": "assistant", ...}], "rejected": [...]}   (HF style)

The prompt is a text (one user turn) or a list of chat messages ending with the user's turn; each answer is a text,
an assistant message, or a whole conversation whose turns before its last reply are the prompt's (the reply is
taken). In CSV/TSV a cell may hold such a list as JSON. Every record becomes {"prompt": [messages], "chosen": str,
"rejected": str, "line", "file"}; what a chat template cannot take is an error naming the file and the line.

The split is by prompt: every pair of one prompt goes to the same split (preference_key).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Optional

from tunelab.config import Config
from tunelab.data.readers import read_table, record
from tunelab.data.splits import Splits, dedupe, split_groups
from tunelab.errors import TunelabError, where
from tunelab.tasks.lm.chat import ROLES

DELIMITED = (".csv", ".tsv", ".txt")  # files whose cells are always text: a list of messages comes as JSON


# ------------------------------------------------------------------ reading


def read_preferences(
    path: Path,
    prompt_column: str = "prompt",
    chosen_column: str = "chosen",
    rejected_column: str = "rejected",
    problems: Optional[list] = None,
) -> list[dict]:
    """Records {"prompt": [messages], "chosen", "rejected", "line", "file"} of a JSONL/JSON/Parquet/CSV/TSV file, each
    checked. With `problems` (tunelab doctor), a bad pair is recorded there and skipped."""
    path = Path(path)
    table = read_table(path, problems)
    columns = ", ".join(map(repr, table.columns)) or "no columns"
    for column, field in ((prompt_column, "prompt_column"), (chosen_column, "chosen_column"),
                          (rejected_column, "rejected_column")):  # fmt: skip
        if column not in table.columns:
            guess = difflib.get_close_matches(column, table.columns, n=1)
            hint = f" Did you mean '{guess[0]}'?" if guess else ""
            raise TunelabError(
                f"{path}: no column '{column}' (data.{field}). The file has: {columns}.{hint} Name the right one in "
                f"the recipe (data.{field})."
            )
    as_json = path.suffix.lower() in DELIMITED
    records = []
    for row in table.rows:
        at = where(path, row.line)
        try:
            prompt = to_prompt(row.values.get(prompt_column), prompt_column, at, as_json)
            chosen = to_answer(row.values.get(chosen_column), chosen_column, prompt, at, as_json)
            rejected = to_answer(row.values.get(rejected_column), rejected_column, prompt, at, as_json)
            if chosen.strip() == rejected.strip():
                raise TunelabError(
                    f"{at}: '{chosen_column}' and '{rejected_column}' are the same answer, so there is no preference "
                    "to learn. Fix one of them or remove the line."
                )
        except TunelabError as e:
            if problems is None:
                raise
            record(problems, e, "bad_pair")
            continue
        records.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "line": row.line,
                        "file": str(path)})  # fmt: skip
    if not records and problems is None:
        raise TunelabError(f"{path}: no preference pairs. Add rows with a prompt, a chosen and a rejected answer.")
    return records


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # None or NaN (an empty CSV/Parquet cell)


def _json_messages(value: str) -> Any:
    """A CSV/TSV cell holding a JSON message or list of messages, decoded; any other text as it is."""
    if not value.lstrip().startswith(("[", "{")):
        return value
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError:
        return value
    items = decoded if isinstance(decoded, list) else [decoded]
    return decoded if items and all(isinstance(m, dict) and "role" in m for m in items) else value


def to_prompt(value: Any, column: str, at: str, as_json: bool = False) -> list[dict]:
    """The prompt as chat messages: a text is one user turn; a list of messages is checked as a chat template takes
    it (known roles, text content, a system message only first, the user's turn last)."""
    if _missing(value):
        raise TunelabError(f"{at}: no '{column}'. Every pair needs a prompt; fill it in or remove the line.")
    if isinstance(value, str) and as_json:
        value = _json_messages(value)
    if isinstance(value, str):
        if not value.strip():
            raise TunelabError(f"{at}: empty '{column}'. Every pair needs a prompt; fill it in or remove the line.")
        return [{"role": "user", "content": value}]
    messages = [value] if isinstance(value, dict) else value
    if not isinstance(messages, list) or not messages:
        got = "an empty list" if isinstance(messages, list) else type(value).__name__
        raise TunelabError(
            f'{at}: \'{column}\' must be a text or a list of {{"role": ..., "content": ...}} messages, got {got}.'
        )
    out = []
    for i, m in enumerate(messages):
        out.append(_message(m, f"{at}: '{column}' message {i + 1}"))
        if out[-1]["role"] == "system" and i > 0:
            raise TunelabError(
                f"{at}: '{column}' message {i + 1} is a system message after the first turn; chat templates take one "
                "system message, at the start. Move it to the start or merge it into the first."
            )
    if out[-1]["role"] != "user":
        raise TunelabError(
            f"{at}: '{column}' ends with a {out[-1]['role']} turn; it must end with the user's turn that the answers "
            "reply to. Move that reply out of the prompt (into the answers) or remove the line."
        )
    return out


def to_answer(value: Any, column: str, prompt: list[dict], at: str, as_json: bool = False) -> str:
    """An answer's text: a text, an assistant message, or a conversation of the prompt's turns then the reply."""
    if _missing(value):
        raise TunelabError(
            f"{at}: no '{column}'. Every pair needs a chosen and a rejected answer; add it or remove the line."
        )
    if isinstance(value, str) and as_json:
        value = _json_messages(value)
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list):
        if not value:
            raise TunelabError(f"{at}: empty '{column}'. Give the answer's text or remove the line.")
        messages = [_message(m, f"{at}: '{column}' message {i + 1}") for i, m in enumerate(value)]
        if messages[-1]["role"] != "assistant":
            raise TunelabError(
                f"{at}: '{column}' ends with a {messages[-1]['role']} turn, not the assistant's answer. Give the "
                "answer's text, or the conversation ending with the assistant's reply."
            )
        head = messages[:-1]
        if head and [(m["role"], m["content"].strip()) for m in head] != [
            (m["role"], m["content"].strip()) for m in prompt
        ]:
            raise TunelabError(
                f"{at}: '{column}' is a conversation whose turns before its last reply differ from the prompt. Give "
                "the reply alone, or the prompt's turns followed by the reply."
            )
        value = messages[-1]["content"]
    if not isinstance(value, str):
        raise TunelabError(
            f"{at}: '{column}' must be the answer's text or an assistant message, got {type(value).__name__}."
        )
    if not value.strip():
        raise TunelabError(f"{at}: empty '{column}'. Every pair needs two answers; fill it in or remove the line.")
    return value


def _message(m: Any, what: str) -> dict:
    """One chat message {"role", "content"} (other keys dropped), its role known and its content text."""
    if not isinstance(m, dict) or "role" not in m or "content" not in m:
        raise TunelabError(f'{what} is not a {{"role": ..., "content": ...}} object: {str(m)[:80]!r}.')
    if m["role"] not in ROLES:
        raise TunelabError(f"{what} has unknown role {m['role']!r}. Roles are {', '.join(ROLES)}.")
    if not isinstance(m["content"], str) or not m["content"].strip():
        raise TunelabError(
            f"{what} ({m['role']}) has empty or non-text content (a list of parts is not taken). Give its text, or "
            "remove the message."
        )
    return {"role": m["role"], "content": m["content"]}


# ------------------------------------------------------------------ splitting


def preference_key(r: dict) -> str:
    """The prompt's identity: its messages as canonical JSON (a text prompt and its one user message are the same)."""
    return json.dumps(r["prompt"], sort_keys=True, ensure_ascii=False)


def pair_key(r: dict) -> tuple[str, str, str]:
    return preference_key(r), r["chosen"], r["rejected"]


def preference_splits(cfg: Config, files: dict[str, Optional[list[dict]]]) -> Splits:
    """Deduplicated on (prompt, chosen, rejected) — train also against given validation/test files —, then split by
    prompt (one prompt's pairs never straddle splits, seeded by data.split_seed); given files take their split's
    place; data.limit caps train. `files`: {"train", "validation", "test"}, each read_preferences' records or None."""
    d = cfg.data
    records, dropped = dedupe(files["train"], key=pair_key) if d.dedupe else (files["train"], 0)
    held_out = {pair_key(r) for r in (files.get("validation") or []) + (files.get("test") or [])}
    if d.dedupe and held_out:
        before = len(records)
        records = [r for r in records if pair_key(r) not in held_out]
        dropped += before - len(records)
    fractions = (
        0.0 if files.get("validation") is not None else d.validation_fraction,
        0.0 if files.get("test") is not None else d.test_fraction,
    )
    train, val, test = split_groups(records, fractions, d.split_seed, key=preference_key)
    val = files["validation"] if files.get("validation") is not None else val
    test = files["test"] if files.get("test") is not None else test
    return Splits(train[: d.limit] if d.limit else train, val, test, dropped)


def preference_files(cfg: Config, problems: Optional[list] = None) -> dict[str, Optional[list[dict]]]:
    """Each given file's pairs as read (the recipe's columns); None where no file is named."""
    d = cfg.data
    columns = (d.prompt_column, d.chosen_column, d.rejected_column)
    return {name: read_preferences(path, *columns, problems=problems) if path else None
            for name, path in (("train", d.train), ("validation", d.validation), ("test", d.test))}  # fmt: skip
