"""Generative language modelling: chat SFT and continued pre-training of causal LMs, masked-LM adaptation of encoders.

chat.py        chats (messages / prompt-response / Alpaca) rendered with the model's template, assistant-only labels
text.py        raw documents streamed, split by document hash, cut into pieces (causal) or masked (mlm)
packing.py     rows: one sample each, or packed with restarting positions (no attention across samples)
spec.py        the causal-LM spec: the fused linear cross-entropy (no batch x length x vocab logits)
spec_mlm.py    the masked-LM spec
metrics.py     perplexity as streaming sums
generation.py  exact match, token F1, ROUGE-L, contains-answer (metrics/text.py); sample tables; base vs tuned rows
predictor.py   Generator: generate / chat / stream (tunelab.load)
story.py       the sft and lm runs, and the story every language-modelling task shares (base -> fit -> tuned)
story_mlm.py   the mlm run
config.py      their recipe fields (chat format, trained tokens, packing, text field, mlm masking; generation in eval)
doctor.py      the rows `tunelab doctor` checks
held_out.py    held-out prompts and reference answers (test split or a file) that an export is checked on
"""
