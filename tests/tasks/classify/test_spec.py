"""The sequence-level spec: class weights."""

from __future__ import annotations

import torch

from tunelab.tasks.classify.spec import class_weights


def test_class_weights():
    w = class_weights("balanced", [0, 0, 0, 1], 2)
    assert torch.allclose(w, torch.tensor([4 / 6, 4 / 2]))
    assert class_weights("none", [0, 1], 2) is None
