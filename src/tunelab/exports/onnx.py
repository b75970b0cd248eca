"""format "onnx" (+ `--quantize int8`): an encoder run (classification, multilabel, regression, ner, mlm) for
onnxruntime, one file answering `logits` and `embeddings` in one pass, its parity measured as it is written.

What the folder holds (manifest.json lists it; nothing in it needs tunelab to run):

    model.onnx        inputs input_ids, attention_mask (and token_type_ids where the tokenizer makes them): int64,
                      shape (batch, sequence), both axes dynamic. Outputs:
                        logits      exactly what the run's model/ gives (a calibrated run's temperature is folded into
                                    its weights already, so it is in here once and nowhere else)
                        embeddings  (batch, hidden) the mean of the last hidden states over real tokens, L2-normalised:
                                    the pooling of `POST /v1/embeddings` (predictors/embedder.py)
                      A run without a predictor (mlm) exports its encoder and `embeddings` alone: its fill-mask head
                      (a vocabulary-wide output per token) answers nothing a tunelab export serves.
    tokenizer files   tokenizer.json, tokenizer_config.json, ... (transformers.AutoTokenizer.from_pretrained(DIR))
    labels.json       {index: label} of the logits' last axis (not for mlm)
    run.json, config.yaml   the run's fields its predictor reads (preprocessing, labels), so tunelab.load(DIR),
                      tunelab predict/eval/serve DIR answer as the run does (predictors/onnx.py)
    manifest.json     inputs, outputs, opset, and the parity measured (exports/parity.py)

The exporter is torch.onnx.export with dynamo=True (torch.export, then onnxscript): it records the graph for symbolic
batch and sequence sizes. The older TorchScript tracer (dynamo=False) is 5-10x faster to export, but it traced a tiny
BERT into a graph whose logits were off by 0.2 at other shapes than the example's (sizes baked in as constants), with
no error — a wrong file is worse than a slow export, and the parity check would refuse it anyway.
int8 is onnxruntime's dynamic quantisation (weights int8 per tensor, activations quantised on the fly) of the
matrix products; the word-embedding table stays fp32 (a Gather, a lookup: no arithmetic to speed up, and its size is
the one thing quantising it would save).
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Optional

import torch

from tunelab.errors import TunelabError
from tunelab.exports.manifest import write_manifest
from tunelab.registry import TASKS
from tunelab.runs.rundir import RunDir

OPSET = 18
MODEL_FILE = "model.onnx"
# the run.json fields a predictor of the export reads (and what identifies the run it came from)
RUN_FIELDS = ("schema_version", "task", "status", "pipeline_tag", "versions", "base_model", "labels", "entity_types",
              "preprocessing", "selection", "best")  # fmt: skip
INT8_OPS = ["MatMul", "Gemm"]  # what int8 quantises: the matrix products (not the embedding Gather; see above)


class Outputs(torch.nn.Module):
    """The run's model answering what its export answers, in one pass: (logits, embeddings) or (embeddings,).

    The embeddings are pooled from the output of the model's own encoder (`base_model`, the backbone inside
    BertFor..., caught by a forward hook while the whole model runs), exactly as predictors/embedder.py pools them."""

    def __init__(self, model, outputs: tuple[str, ...]):
        super().__init__()
        self.model, self.outputs, self.kept = model, outputs, []
        if "logits" in outputs and "embeddings" in outputs:
            model.base_model.register_forward_hook(lambda module, args, out: self.kept.append(out[0]))

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        answers = []
        if "logits" in self.outputs:
            answers.append(self.model(**inputs).logits)
            hidden = self.kept.pop() if "embeddings" in self.outputs else None
        else:
            hidden = self.model.base_model(**inputs)[0]
        if "embeddings" in self.outputs:
            weights = attention_mask.unsqueeze(-1).float()
            mean = (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            answers.append(torch.nn.functional.normalize(mean, dim=-1))
        return tuple(answers)


def outputs_of(task: str) -> tuple[str, ...]:
    """What a task's export answers: logits where the run has a predictor (its answers are made from them), and
    embeddings where it serves them (the registry's endpoints)."""
    family = TASKS[task]
    return (("logits",) if family.predictor else ()) + (("embeddings",) if "embeddings" in family.endpoints else ())


def export_onnx(model, tokenizer, outputs: tuple[str, ...], file: Path) -> list[str]:
    """Write `model` (fp32, eval mode) to `file` with dynamic batch and sequence axes; returns the input names."""
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in tokenizer.model_input_names
                                               else [])  # fmt: skip
    # the example: two rows, one padded, so that nothing about masks or lengths is specialised to one case
    ids = torch.full((2, 8), tokenizer.pad_token_id or 0, dtype=torch.long)
    ids[:, :8] = torch.arange(1000, 1008) % model.config.vocab_size
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    example = (ids, mask, torch.zeros_like(ids))[: len(names)]
    longest = getattr(model.config, "max_position_embeddings", None) or 512
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence", max=longest)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping torchvision::nms", and the like
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on axis names and deprecated functions, every time
        try:
            torch.onnx.export(Outputs(model, outputs), example, str(file), dynamo=True, external_data=False,
                              input_names=names, output_names=list(outputs), opset_version=OPSET,
                              dynamic_shapes=[{0: batch, 1: sequence}] * len(names), verbose=False)  # fmt: skip
        finally:
            exporter_log.setLevel(level)
    return names


def narrowing_products(source: Path) -> list[str]:
    """The products with a weight that maps more inputs to fewer outputs: each block's feed-forward output (d_ff ->
    d_model) and a classifier head. int8 keeps them in fp32. Their input is the feed-forward's activation, whose few
    large outliers set the one dynamic int8 scale of the whole row block, so the many small values round to few
    levels, and the error enters the residual stream directly (the outlier problem of Bondarenko et al. 2021,
    "Understanding and Overcoming the Challenges of Efficient Transformer Quantization"). Measured on the demo run
    (MiniLM, 1,056 test texts, Zen 3): label agreement with fp32 98.8% -> 99.3%, accuracy change -0.28 -> +0.28
    points, embedding cosine 0.992 -> 0.996, 56.7 -> 66.8 MB; keeping only the head in fp32 changed nothing."""
    import onnx

    graph = onnx.load(str(source), load_external_data=False).graph
    weights = {w.name: list(w.dims) for w in graph.initializer}
    transposed = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Transpose"}  # W^T of a Linear
    names = []
    for node in graph.node:
        if node.op_type not in INT8_OPS:
            continue
        b = node.input[1]
        dims = weights.get(b) or weights.get(transposed.get(b, ""))
        if not dims or len(dims) != 2:
            continue  # activation x activation (attention's products): not quantised anyway
        k, n = dims
        if b not in weights:  # a Transpose of the stored weight: stored as (out, in)
            k, n = n, k
        if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            k, n = n, k
        if k > n:
            # a Gemm is quantised as MatMul + Add under the name "<gemm>_MatMul"
            names += [node.name, f"{node.name}_MatMul"] if node.op_type == "Gemm" else [node.name]
    return names


def quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process the graph, on every call, through the root logger
    try:
        # MatMulConstBOnly: only products with a weight; attention's activation x activation products stay fp32.
        # per_channel: a scale per output column, not one per matrix. Measured on the demo run (MiniLM, 1,056 test
        # texts, Zen 3): label agreement with fp32 96.2% -> 98.8%, accuracy change -0.38 -> -0.28 points, embedding
        # cosine 0.958 -> 0.992, the same file size; reduce_range (7-bit weights) on top: 98.6%, +0.10 points.
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, op_types_to_quantize=INT8_OPS, per_channel=True,
                         extra_options={"MatMulConstBOnly": True},
                         nodes_to_exclude=narrowing_products(source))  # fmt: skip
    finally:
        root.setLevel(level)


def write(run_path: Path, out: Path, quantize: Optional[str] = None, check_data: Optional[Path] = None) -> Path:
    """Export the run's model/ to out/model.onnx (int8: quantised from an fp32 export, which is then removed), with
    the tokenizer, labels and the run's fields beside it; parity measured on the test split or `check_data`."""
    from tunelab.exports.parity import measure
    from tunelab.predictors.common import load_run_model

    run = RunDir.open(run_path)
    task = run.info.get("task")
    tokenizer, model, _ = load_run_model(run, "cpu")
    model = model.float().eval()
    outputs = outputs_of(task)
    fp32 = out / (MODEL_FILE if quantize is None else "model.fp32.onnx")
    inputs = export_onnx(model, tokenizer, outputs, fp32)
    file = fp32
    if quantize == "int8":
        file = out / MODEL_FILE
        quantize_int8(fp32, file)
    parity = measure(run, fp32, file if quantize else None, check_data)
    if quantize:
        fp32.unlink()  # one .onnx file per folder: the quantised one
    tokenizer.save_pretrained(out)
    files = sorted(p.name for p in out.iterdir())
    (out / "run.json").write_text(json.dumps({k: run.info[k] for k in RUN_FIELDS if k in run.info}, indent=2,
                                             ensure_ascii=False) + "\n", encoding="utf-8")  # fmt: skip
    shutil.copy(run / "config.yaml", out / "config.yaml")
    extra = ["run.json", "config.yaml"]
    if "logits" in outputs:
        (out / "labels.json").write_text(json.dumps(run.info.get("labels", {}), indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")  # fmt: skip
        extra.append("labels.json")
    if parity.get("fp32_max_abs_diff", 0.0) > 1e-4:
        raise TunelabError(
            f"{run.path}: the ONNX export's outputs differ from the PyTorch model's by up to "
            f"{parity['fp32_max_abs_diff']:.2e} on {parity['examples']} examples (the limit is 1e-4), so the file was "
            "not kept. Its model class may hold an operation the exporter records wrongly: export as hf instead "
            "and report the model type."
        )
    write_manifest(out, run.path, "onnx", quantize, sorted(files + extra + ["manifest.json"]), parity,
                   model_file=MODEL_FILE, opset=OPSET, inputs={n: ["batch", "sequence"] for n in inputs},
                   input_dtype="int64", outputs=_output_shapes(outputs),
                   labels=run.info.get("labels") if "logits" in outputs else None)  # fmt: skip
    return out


def _output_shapes(outputs: tuple[str, ...]) -> dict:
    shapes = {"logits": "(batch, labels), per text; (batch, sequence, labels) per token for ner",
              "embeddings": "(batch, hidden), mean-pooled over attention_mask, L2-normalised"}  # fmt: skip
    return {name: shapes[name] for name in outputs}
