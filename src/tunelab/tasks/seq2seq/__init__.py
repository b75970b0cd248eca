"""Text-to-text fine-tuning: `summarization` and `translation`, decoder-only or encoder-decoder as the model's config
says.

config.py      its recipe fields (source/target columns, prompt template, languages, token limits; generation in
               eval) and its defaults (LoRA, batch 8)
kind.py        which kind of model: AutoModelForSeq2SeqLM or AutoModelForCausalLM, from the model's config
data.py        pairs from files or built-ins, prompts from a template over the columns, dedupe, split
encode.py      pairs -> token ids for either kind (loss on the target only); the prompt format a run keeps
spec.py        the encoder-decoder loss; the spec that adds generation metrics to each validation
generation.py  batched generation (by length, left padding for decoder-only, KV cache, greedy or beams)
metrics.py     perplexity plus ROUGE, BLEU, chrF, exact match, token F1 (tunelab.metrics.text, 0–100)
predictor.py   TextToText: a finished run's outputs for new texts (tunelab.load, predict, serve)
report.py      base vs fine-tuned rows, examples side by side, how to generate with plain transformers
doctor.py      `tunelab doctor`: pairs as read (empty ones with file and line), source/target lengths against their
               limits, sources shared between splits
story.py       the run: base (zero-shot) -> fit -> tuned, predictions.jsonl, the card
"""
