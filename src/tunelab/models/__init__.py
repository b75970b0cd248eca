"""Pretrained models: finding and loading them, and the CPU fast paths applied before training. No task knowledge.

load.py         built-in names, local Hugging Face directories, GGUF files, hub ids -> a model of the class asked for
gguf.py         GGUF checkpoints de-quantised once and cached as a plain Hugging Face folder
fast_paths.py   the one place the CPU fast paths are applied (recorded in run.json's `preprocessing`)
dropout.py      dropout whose random mask costs a quarter of torch's on a CPU
first_token.py  the classifier's last encoder layer computed for the first token only
skinny.py       faster linear layers for skinny inputs (decoding a batch of replies one token at a time)
decode.py       batched generation with one KV cache (continuous batching): per-row sampling, seed, stop strings,
                streaming text; what `tunelab serve` and text-to-text evaluation decode decoder-only models with
"""
