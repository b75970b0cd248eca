"""Held-out prompts of preference runs and their chosen answers, read as the run split them (or from a given file):
what an export of the run is checked on (the registry's `held_out` hook; exports/gguf.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from tunelab.config import Config
from tunelab.data.builtin import load_builtin
from tunelab.tasks.lm.chat import chat_splits, prompt_and_reference
from tunelab.tasks.preference.data import preference_files, preference_splits, read_preferences
from tunelab.tasks.preference.selfplay import BUILTIN


def pairs(cfg: Config, file: Optional[Path] = None) -> list[tuple[list[dict], str]]:
    """(prompt messages, chosen answer) for each pair of the run's test split, or of `file` (the run's columns). For
    the built-in self-play pairs: the test questions and their corpus answers (the chosen ones), as selfplay.py splits
    them, without generating the rejected answers."""
    d = cfg.data
    if file:
        records = read_preferences(file, d.prompt_column, d.chosen_column, d.rejected_column)
    elif d.train is None and d.dataset in BUILTIN:
        chats, _ = load_builtin(BUILTIN[d.dataset], "chat")
        test = chat_splits(cfg, {"train": chats, "validation": None, "test": None}).test
        return [prompt_and_reference(r["messages"]) for r in test]
    else:
        records = preference_splits(cfg, preference_files(cfg)).test
    return [(r["prompt"], r["chosen"]) for r in records]
