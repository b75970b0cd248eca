"""Exports: a finished run written where it is used, each format checked against the run's own model as it is written.

write.py   export(): checks the request (the registry's `exports`), writes into a temporary folder, renames
manifest.py  manifest.json: what an export holds, the parity it measured (write_manifest, read_manifest)
hf.py      "hf": the plain Hugging Face model directory (merged, safetensors), copied — every run
onnx.py    "onnx" (+ `--quantize int8`): encoder runs for onnxruntime, parity measured on the run's test split
parity.py  the ONNX parity: the run's predictor with the file in place of its model (fp32 difference; int8 agreement)
gguf.py    "gguf" (`--quantize f16|q8_0`): causal-LM runs for llama.cpp and Ollama (with a Modelfile), parity measured
modelfile.py  the Ollama Modelfile beside a GGUF: ChatML in Go template syntax, system prompt, stop tokens

Which formats a task can take is the registry's `exports` field ("hf" always). A failed or killed export leaves
nothing half-written. Each format module has `write(run_path, out, quantize, check_data)`; onnx and gguf also write
`manifest.json` (what was exported, how to load it, and the parity measured at export under "parity").
"""

from tunelab.lazy import exports

__all__ = ["export", "FORMATS", "QUANTIZE"]
__getattr__, __dir__ = exports(__name__, {"export": "write", "FORMATS": "write", "QUANTIZE": "write"})
