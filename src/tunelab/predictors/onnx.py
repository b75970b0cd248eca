"""An ONNX export on onnxruntime, behind the same predictors as the run it came from.

`tunelab export RUN --format onnx` writes a folder holding one `.onnx` file, the tokenizer, labels.json, the run's
run.json (the fields predictors read) and config.yaml, and manifest.json (exports/onnx.py). `tunelab.load(DIR)` gives
the run family's own predictor (TextClassifier, EntityTagger) with `OnnxModel` in place of the PyTorch model, so
tokenisation, batching and every logits -> answer step (labels, scores, thresholds, values, spans with offsets) are
the very code that answers for the run — nothing is re-implemented, so nothing can drift. An export of a run without
a predictor (mlm) answers embeddings: `EmbeddingPredictor`.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import numpy as np
import torch

from tunelab.config import load_run_config
from tunelab.errors import TunelabError
from tunelab.runs.rundir import RunDir


def onnx_file(path: Path) -> Optional[Path]:
    """The .onnx file of an ONNX export folder (its manifest says format "onnx"), or None for any other folder."""
    from tunelab.exports.manifest import read_manifest

    manifest = read_manifest(path)
    if manifest is None or manifest.get("format") != "onnx":
        return None
    return Path(path) / manifest["model_file"]


def session(file: Path, threads: Optional[int] = None):
    """An onnxruntime CPU session on `file`, its threads as torch's (what `train.num_threads` set)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise TunelabError(
            f"{file}: running an ONNX export needs onnxruntime, which is not installed. Install the export extra: "
            "pip install 'tunelab[export]'."
        ) from e
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3  # no warnings about unused initialisers on every load
    return ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])


class OnnxModel(torch.nn.Module):
    """A stand-in for the run's transformers model: called with the same tensors, it answers `.logits` (and
    `.embeddings` where the file has them) computed by onnxruntime. It is a Module only so that the evaluation loop,
    which asks a model for its device (a zero-size parameter: the CPU) and switches it to eval mode, runs it as is."""

    def __init__(self, file: Path, threads: Optional[int] = None):
        super().__init__()
        self.file = Path(file)
        self.session = session(self.file, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.register_parameter("device_probe", torch.nn.Parameter(torch.empty(0), requires_grad=False))

    def feed(self, input_ids, attention_mask=None, token_type_ids=None) -> dict[str, np.ndarray]:
        """The session's inputs: int64 arrays; an absent attention mask is all ones, absent token types all zeros."""
        ids = np.asarray(input_ids.cpu() if torch.is_tensor(input_ids) else input_ids, dtype=np.int64)
        given = {"input_ids": ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        default = {"attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        feed = {}
        for name in self.input_names:
            value = given.get(name)
            value = default[name] if value is None else value
            feed[name] = np.asarray(value.cpu() if torch.is_tensor(value) else value, dtype=np.int64)
        return feed

    def run(self, input_ids, attention_mask=None, token_type_ids=None) -> dict[str, np.ndarray]:
        answers = self.session.run(None, self.feed(input_ids, attention_mask, token_type_ids))
        return dict(zip(self.output_names, answers))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **ignored):
        out = self.run(input_ids, attention_mask, token_type_ids)
        return SimpleNamespace(**{name: torch.from_numpy(value) for name, value in out.items()})

    def embed(self, input_ids, attention_mask) -> np.ndarray:
        """The file's `embeddings` output: the mean of the last hidden states over real tokens, L2-normalised (what
        predictors/embedder.py computes from a PyTorch model)."""
        if "embeddings" not in self.output_names:
            raise TunelabError(f"{self.file}: this ONNX file has no embeddings output (it has {self.output_names}).")
        return self.run(input_ids, attention_mask)["embeddings"]

    @property
    def dimensions(self) -> int:
        shape = next(o.shape for o in self.session.get_outputs() if o.name == "embeddings")
        return int(shape[-1])


def load_onnx_model(run: RunDir, device: Optional[str] = None):
    """(tokenizer, OnnxModel, CPU) for an export folder: what predictors/common.py's load_run_model gives for a run."""
    import transformers

    if device not in (None, "cpu"):
        raise TunelabError(f"{run.path}: an ONNX export runs on onnxruntime's CPU provider, not on '{device}'.")
    file = onnx_file(run.path)
    if file is None or not file.exists():
        raise TunelabError(f"{run.path}: its manifest.json names no .onnx file that exists. Export the run again.")
    tokenizer = transformers.AutoTokenizer.from_pretrained(run.path)
    return tokenizer, OnnxModel(file), torch.device("cpu")


class EmbeddingPredictor:
    """The predictor of an export whose run answers embeddings only (mlm): `predict(texts)` ->
    [{"embedding": [floats]}, ...], the vectors `POST /v1/embeddings` answers for the run."""

    def __init__(self, run: RunDir, device: Optional[str] = None):
        from tunelab.predictors.embedder import Embedder

        self.run, self.info = run, run.info
        self.config = load_run_config(run / "config.yaml")
        self.embedder = Embedder.from_run(run.path, device)

    def predict(self, texts: list[str] | str, batch_size: int = 64) -> list[dict]:
        vectors = self.embedder.embed([texts] if isinstance(texts, str) else list(texts), batch_size)
        return [{"embedding": [float(x) for x in row]} for row in vectors]

    def evaluate(self, path, batch_size: int = 64) -> dict:
        raise TunelabError(
            f"{self.run.path}: an export of a {self.info.get('task')} run answers embeddings only, so there are no "
            f"labels to evaluate against. Evaluate the run itself, or predict with it: tunelab predict {self.run.path}."
        )
