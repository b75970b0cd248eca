"""What every predictor does first: open the run's model/ folder (plain transformers), quietly, on a device — or,
for an ONNX export folder, its .onnx file on onnxruntime (predictors/onnx.py), behind the same predictor."""

from __future__ import annotations

from typing import Optional

import torch

from tunelab.errors import TunelabError
from tunelab.registry import model_class
from tunelab.runs.rundir import RunDir
from tunelab.training.devices import pick_device
from tunelab.training.distributed import quiet_libraries


def load_run_model(run: RunDir, device: Optional[str] = None):
    """(tokenizer, model in eval mode, device) from the run's model/ folder, loaded with the transformers class the
    registry picks for the run's task (run.json) and its model's config; a clear error when the run has none. An ONNX
    export folder gives its OnnxModel instead: the predictors run it unchanged."""
    import transformers

    from tunelab.predictors.onnx import load_onnx_model, onnx_file

    if onnx_file(run.path) is not None:
        return load_onnx_model(run, device)

    quiet_libraries()  # no transformers load report or progress bars in predictions
    if not (run / "model").exists():
        raise TunelabError(
            f"{run.path}: no model/ folder: the run did not finish. Resume it with `tunelab train --resume {run.path}`."
        )
    where = torch.device(device or pick_device("auto"))  # the same choice as training's train.device: auto
    tokenizer = transformers.AutoTokenizer.from_pretrained(run / "model")
    config = transformers.AutoConfig.from_pretrained(run / "model")
    auto_class = getattr(transformers, model_class(run.info.get("task"), config))
    model = auto_class.from_pretrained(run / "model", config=config).to(where).eval()
    return tokenizer, model, where
