"""The data fingerprint in run.json (`data.fingerprint`): a hash of exactly what a run trains and evaluates on, split by
split, so `--resume` refuses other data. Each family says which fields of its examples count."""

from __future__ import annotations

import hashlib
import json
from typing import Callable, Iterable


def data_fingerprint(parts: Iterable[tuple[str, list]], fields: Callable[[dict], list]) -> str:
    """16 hex digits over (split name, fields of each example), in order."""
    h = hashlib.sha256()
    for name, examples in parts:
        for example in examples:
            h.update(json.dumps([name, *fields(example)], ensure_ascii=False).encode())
    return h.hexdigest()[:16]
