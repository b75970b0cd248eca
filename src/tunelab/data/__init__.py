"""Data: readers with file:line errors, splits, built-in datasets, and each family's encoding into model rows."""

IGNORE = -100  # the label of a position that no loss counts (PyTorch's cross_entropy ignore_index)
