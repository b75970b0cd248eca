"""Fit diagnosis, read from a run's logged curves (metrics.jsonl): over-fitting, under-fitting, unstable training, or
none of them — each with the step it shows from and the recipe fields that act on it.

The thresholds (README, "Is it over-fitting?"):
  over-fitting    the validation loss reached its minimum at step s and each of the last RISING (3) validations after
                  it is more than RISE (2%) above that minimum, while the training loss after s is below the training
                  loss before s (the model keeps fitting its training data). Whether early stopping caught it: the run
                  stopped early, or the best checkpoint (the one saved) is at or before s.
  under-fitting   the training loss barely moved: the mean of the last fifth of the logged losses is above 95% of
                  the first fifth's (STUCK: the model has not learned the task); or, at the last step, both still
                  improving: the training loss over the last third of the logged steps
                  fell by more than DROP (5%) from its start to its end (the means of its first and last halves), and
                  the best validation of the selection metric is the last validation (runs without validation: the
                  training loss alone), and no over-fitting found (validation loss rising while the metric still
                  improves is a model growing over-confident: over-fitting, which calibration partly undoes).
  unstable        a logged loss that is not finite, or SPIKE (3) times the median of the WINDOW (10) logged losses
                  before it, or a gradient norm BLOWUP (10) times the median of the norms before it.
"""

from __future__ import annotations

import math
import statistics

RISING, RISE, DROP, STUCK, SPIKE, BLOWUP, WINDOW = 3, 0.02, 0.05, 0.05, 3.0, 10.0, 10

ACTIONS = {
    "over-fitting": "stop earlier (eval.patience), regularise (optim.weight_decay, model.dropout), fewer trainable "
    "parameters (method.name: lora or frozen), fewer train.epochs, or more training data",
    "under-fitting": "train longer (train.epochs, train.max_steps), another learning rate (optim.lr), a larger model "
    "(model.name) or more trainable parameters (method.name: full, a larger method.r)",
    "unstable": "a lower learning rate (optim.lr), a longer warm-up (optim.warmup_ratio), gradient clipping "
    "(train.max_grad_norm), or fp32 (train.precision) if it happens under bf16",
}


def diagnose(history: list[dict], metric: str, higher_is_better: bool, status: str = "completed",
             best_step=None) -> dict:  # fmt: skip
    """{"verdict", "findings": [{"kind", "step", "why", "act"} ...]} from metrics.jsonl's records."""
    train = [(r["step"], r["loss"]) for r in history if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in history if "val_loss" in r]
    scores = [(r["step"], r[f"val_{metric}"]) for r in history if f"val_{metric}" in r]
    over = _over_fitting(train, val, status, best_step)
    # over-fitting in the loss while the metric still improves (the model grows over-confident) is over-fitting
    under = None if over else _under_fitting(train, scores, higher_is_better)
    findings = [f for f in (_unstable(history, train), over, under) if f]
    for f in findings:
        f["act"] = ACTIONS[f["kind"]]
    verdict = ", ".join(f["kind"] for f in findings) or "neither over- nor under-fitting"
    return {"verdict": verdict, "findings": findings}


def _unstable(history: list[dict], train: list) -> dict | None:
    for i, (step, loss) in enumerate(train):
        if not math.isfinite(loss):
            return {"kind": "unstable", "step": step, "why": f"the training loss is {loss} at step {step}"}
        before = [x for _, x in train[max(0, i - WINDOW) : i]]
        if len(before) >= 5 and loss > SPIKE * statistics.median(before):
            times = loss / statistics.median(before)
            return {"kind": "unstable", "step": step, "why": f"the training loss spiked to {loss:.4g} at step {step}, "
                    f"{times:.1f}x the median of the {len(before)} logged before it"}  # fmt: skip
    norms = [(r["step"], r["grad_norm"]) for r in history if r.get("grad_norm") is not None]
    for i, (step, g) in enumerate(norms):
        before = [x for _, x in norms[max(0, i - WINDOW) : i]]
        if len(before) >= 5 and (not math.isfinite(g) or g > BLOWUP * statistics.median(before)):
            return {"kind": "unstable", "step": step, "why": f"the gradient norm blew up to {g:.4g} at step {step} "
                    f"(the median before it: {statistics.median(before):.4g})"}  # fmt: skip
    return None


def _over_fitting(train: list, val: list, status: str, best_step) -> dict | None:
    if len(val) < RISING + 1:
        return None
    i = min(range(len(val)), key=lambda k: val[k][1])
    step, low = val[i]
    after = val[i + 1 :]
    if len(after) < RISING or any(v <= low * (1 + RISE) for _, v in after[-RISING:]):
        return None
    early = [x for s, x in train if s <= step][-max(1, len([s for s, _ in train if s > step])) :]
    late = [x for s, x in train if s > step]
    if not early or not late or statistics.fmean(late) >= statistics.fmean(early):
        return None
    caught = status == "stopped_early" or (best_step is not None and best_step <= step)
    how = ("early stopping ended the run" if status == "stopped_early" else
           f"the saved model is the best checkpoint, step {best_step}, from before it" if caught else
           f"the saved model is the best checkpoint by its metric, step {best_step}, after it began")  # fmt: skip
    return {"kind": "over-fitting", "step": step, "caught": caught,
            "why": f"the validation loss was lowest at step {step} ({low:.4g}) and rose to {after[-1][1]:.4g} over the "
            f"{len(after)} validations after it while the training loss kept falling; {how}"}  # fmt: skip


def _under_fitting(train: list, scores: list, higher: bool) -> dict | None:
    tail = [x for _, x in train[-max(4, len(train) // 3) :]] if len(train) >= 4 else []
    if not tail:
        return None
    fifth = max(1, len(train) // 5)
    first, last = (statistics.fmean(x for _, x in part) for part in (train[:fifth], train[-fifth:]))
    if last > first * (1 - STUCK):
        return {"kind": "under-fitting", "step": train[0][0],
                "why": f"the training loss barely moved ({first:.4g} over the first fifth of the logged steps, "
                f"{last:.4g} over the last): the model has not learned the task"}  # fmt: skip
    half = len(tail) // 2
    start, end = statistics.fmean(tail[:half]), statistics.fmean(tail[half:])
    if not end < start * (1 - DROP):
        return None
    if scores:
        best = (max if higher else min)(range(len(scores)), key=lambda k: scores[k][1])
        if best != len(scores) - 1 or len(scores) < 2:
            return None
        still = f"and the validation metric was best at the last validation (step {scores[-1][0]})"
    else:
        still = "(no validation split to confirm it)"
    return {"kind": "under-fitting", "step": train[-1][0],
            "why": f"the training loss still fell {1 - end / start:.0%} over the last {len(tail)} logged steps "
            f"{still}: the run ended while it was still learning"}  # fmt: skip
