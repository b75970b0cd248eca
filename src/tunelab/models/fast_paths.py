"""CPU fast paths: applied to the loaded (and method-wrapped) model before training; the saved model is untouched.

    cheaper dropout masks   models/dropout.py      each nn.Dropout (LoRA too), attention dropout; train.fast_cpu_dropout
    first-token last layer  models/first_token.py  sequence classifiers whose head reads only the first token
    skinny matmuls          models/skinny.py       decoding a few rows at a time (tunelab serve's batched replies)

Each is a forward, not weights, and each records itself in run.json's `preprocessing`.
"""

from __future__ import annotations

from tunelab.config import TrainConfig
from tunelab.models.dropout import use_fast_dropout
from tunelab.models.first_token import first_token_only


def apply_fast_paths(model, train: TrainConfig, first_token: bool = False) -> dict:
    """Swap in the fast paths the recipe allows; returns what was applied (for run.json's preprocessing)."""
    applied = {"fast_cpu_dropout": train.fast_cpu_dropout}
    if train.fast_cpu_dropout:
        use_fast_dropout(model)  # the same dropout, a cheaper random mask on a CPU
    if first_token:
        applied["first_token_only_last_layer"] = first_token_only(
            model
        )  # checked to give the same logits, else left off
    return applied
