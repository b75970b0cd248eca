"""Task families, one folder each (classify/, ner/, lm/), and the steps their stories share (common.py).

What each task needs is in the registry, `tunelab/registry.py`: a leaf module outside this package, so the config,
the CLI and the components can read it without importing any family.
"""
