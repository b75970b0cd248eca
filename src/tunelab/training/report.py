"""Where the loop's records go besides metrics.jsonl (which stays the run's record): `train.report_to`.

tensorboard   event files under RUN/tensorboard/ (train/loss, train/lr, train/grad_norm, validation/<metric>, ...):
              `tensorboard --logdir runs/` shows every run. The [tensorboard] extra.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

from tunelab.errors import TunelabError


def scalar_name(key: str) -> str:
    return f"validation/{key[4:]}" if key.startswith("val_") else f"train/{key}"


@contextlib.contextmanager
def reporters(names: list[str], run_path: Path, enabled: bool, first_step: int = 0):
    """A function record -> None that writes each record to every reporter named (rank 0 only: `enabled`)."""
    if not enabled or "tensorboard" not in names:
        yield lambda record: None
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise TunelabError("train.report_to: tensorboard needs its extra: pip install 'tunelab[tensorboard]' (make "
                           "installs it).") from None  # fmt: skip
    # purge_step: a resumed run drops the events logged after the checkpoint it restarts from, as metrics.jsonl does
    writer = SummaryWriter(log_dir=str(run_path / "tensorboard"), purge_step=first_step or None)

    def write(record: dict) -> None:
        for key, value in record.items():
            if (
                key != "step"
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                writer.add_scalar(scalar_name(key), value, record["step"])

    try:
        yield write
    finally:
        writer.close()
