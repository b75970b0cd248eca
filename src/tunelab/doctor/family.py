"""What `tunelab doctor` needs of a task family, handed over by the family itself (tasks/<family>/doctor.py; the
registry's `doctor` names it): the checks below it only ever see records with

    text     what duplicates, leakage, near-duplicates and conflicts compare
    label    what conflicting labels compare (absent: the family has no labels)
    counted  the labels the distribution counts (a label, the labels of a multilabel row, the entity types of a
             sentence)
    source, line   where the row is
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np


@dataclass(frozen=True)
class FamilyData:
    read: Callable  # (cfg, problems) -> {"train": records, "validation": records or None, "test": ...} as given
    splits: Callable  # (cfg, files) -> Splits: what the run trains, validates and tests on
    lengths: Callable[..., np.ndarray]  # (records, tokenizer, cfg) -> tokens per record, as training counts them
    long: Optional[str]  # what data.max_length does to a longer example: "truncates" or "splits into windows"; None:
    #   nothing (text-to-text cuts sources and targets to their own limits, in its `checks`): no max_length check
    conflicts_are_problems: bool = True  # sft: several answers to one question are common (info)
    pieces: bool = False  # training cuts each example into max_length rows (lm, mlm): the estimate counts those
    packs: Optional[Callable] = None  # (row lengths, max_length) -> packed row lengths, where data.packing applies
    compares_base: bool = False  # the run also tests the base model (eval.compare_base): a second test pass
    generates: Optional[Callable] = None  # (cfg) -> prompts the run answers by generation (not in the estimate)
    augments: bool = False  # data.augment adds copies of the training examples, which train too (the estimate)
    checks: Optional[Callable] = None  # (cfg, files, splits, tokenizer) -> Findings of the family's own
