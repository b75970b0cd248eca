"""Named-entity recognition: everything the ner task means, in one folder.

data.py       read CoNLL / JSONL (tokens + tags, or text + character spans), tag space, sub-token windows, collate
spec.py       what the loop calls: collate, units (labelled sub-tokens), forward -> (word outputs, summed loss)
metrics.py    strict IOB2 entity precision / recall / F1 (seqeval's), per type, as streaming sums
predictor.py  EntityTagger: raw text -> entity spans with character offsets (tunelab.load, predict, eval)
story.py      the run: data -> model + method -> fit -> best -> test -> outputs (per-type table, confusion plot)
config.py     its recipe fields (columns, tag scheme, sub-tokens, windows)
doctor.py     the rows `tunelab doctor` checks
"""
