"""tunelab export's request checks (tunelab/exports/write.py): what a task can take comes from the registry; a bad
request is one clear error and writes nothing; "hf" copies the plain model."""

from __future__ import annotations

import pytest

import tunelab
from tests.conftest import ROOT
from tunelab.errors import TunelabError

V010 = ROOT / "tests" / "fixtures" / "runs" / "v0.1.0"


def test_hf_copies_the_model_folder_file_for_file(tmp_path):
    out = tunelab.export(V010 / "classification", tmp_path / "hf")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (V010 / "classification" / "model").iterdir()
    )
    assert not list(tmp_path.glob(".tmp-export-*"))


@pytest.mark.parametrize(
    "run, format, quantize, says",
    [
        ("classification", "gguf", None, "exports as hf or onnx, not gguf"),
        ("sft", "onnx", None, "exports as hf or gguf, not onnx"),
        ("classification", "tflite", None, "unknown export format 'tflite'"),
        ("classification", "onnx", "q8_0", "--quantize q8_0: format onnx takes int8"),
        ("classification", "hf", "int8", "--quantize int8: format hf takes none"),
    ],
)
def test_a_request_the_task_cannot_take_is_one_error_and_writes_nothing(tmp_path, run, format, quantize, says):
    with pytest.raises(TunelabError, match=says.replace("(", r"\(")):
        tunelab.export(V010 / run, tmp_path / "out", format=format, quantize=quantize)
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_destination_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(TunelabError, match="exists and is not empty"):
        tunelab.export(V010 / "classification", tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
