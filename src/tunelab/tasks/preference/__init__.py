"""Preference tuning of chat models: `preference` (DPO, IPO, ORPO, SimPO), with no second model in memory.

config.py     its recipe fields: the `preference:` section (loss, beta, gamma, orpo_weight; each loss's paper
              defaults), prompt/chosen/rejected columns, and its defaults (LoRA, dropout off, batch 8 pairs)
data.py       preference files read and checked (file and line), prompts as text or chat messages; split by prompt
encode.py     both answers after the same chat template, labels on the answer tokens only; prompts cut from the left
selfplay.py   the built-in chatterbot_pairs: corpus answer (chosen) vs the starting model's own (rejected), cached
logps.py      per-token log-probabilities through the output head by chunks (never batch x length x vocab logits)
losses.py     the per-pair losses: dpo, ipo, orpo, simpo
spec.py       a batch of pairs as one forward over chosen and rejected sequences; the loss per pair
reference.py  the reference log-probabilities (DPO, IPO): the starting model's (LoRA: adapter off), computed once
              and kept in the run directory, keyed by model, data and precision
metrics.py    reward accuracy, answer log-probabilities, DPO's implicit-reward accuracy and margin
story.py      the run: pairs -> reference -> base measured -> fit -> tuned measured -> model/ served as an sft run's
held_out.py   held-out prompts and chosen answers (test split or a file) that an export is checked on
"""
