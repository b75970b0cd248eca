"""scalars(): the one-number metrics of a metrics dict (what the cross-validation and ensemble summaries keep)."""


def scalars(metrics: dict) -> dict:
    """The metrics that are one number (per-class tables, matrices, label lists and the count `n` left out)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "n"}
