"""Fit diagnosis, read from a run's logged curves (metrics.jsonl): over-fitting, over-confidence, under-fitting,
unstable training, too short to judge, or none of them — each with the step it shows from and the recipe fields that
act on it.

The thresholds (docs/tasks/classification.md, "Is it over-fitting?"):
  over-fitting    the validation loss reached its minimum at step s and each of the last RISING (3) validations after
                  it is more than RISE (2%) above that minimum, while the training loss after s is below the training
                  loss before s (the model keeps fitting its training data). Whether early stopping caught it: the run
                  stopped early, or the best checkpoint (the one saved) is at or before s.
  over-confident  not over-fitting, but the last validation loss is more than RISE above the minimum while the
                  validation metric at the last validation is at least as good as at that minimum: the predictions
                  are still getting more right, only more confidently wrong on the rest (the log loss punishes that).
                  Calibration (eval.calibrate) undoes it; so do fewer epochs.
  under-fitting   the training loss barely moved: the mean of the last fifth of the logged losses is above 95% of
                  the first fifth's (STUCK: the model has not learned the task); or, at the last step, both still
                  improving: the training loss over the last third of the logged steps fell by more than DROP (5%)
                  from its start to its end (the means of its first and last halves), the best validation of the
                  selection metric is the last validation (runs without validation: the training loss alone), and the
                  validation loss did not rise at the last validation (a rising validation loss is never "still
                  learning").
  unstable        from the loss: a logged loss that is not finite, SPIKE (3) times the median of the WINDOW (10)
                  logged losses before it (in the first 5 logs: SPIKE times the first logged loss), or a divergence
                  (the mean of the last fifth of the logged losses DIVERGE (1.5) times the lowest mean of any earlier
                  fifth); from the gradient norm: a non-finite norm, or an isolated jump, BLOWUP (10) times the median
                  of the WINDOW norms before it, after which the norm falls back (the median of the WINDOW norms after
                  it is under SETTLE (3) times the median before). A lasting level shift of the gradient norm while the
                  training loss falls (the new head and the encoder settling after warm-up) is not instability.
  too short to judge  none of the above, but the run had fewer than SHORT_STEPS (100) optimizer steps or fewer than
                  SHORT_VALIDATIONS (3) validations, and the selection metric was best at the last validation while the
                  validation loss did not rise there: the curves end while the model may still be improving, so
                  "neither over- nor under-fitting" would be a guess (issue 35: 48 steps, one validation, accuracy
                  still rising). A run without validation is judged from its training loss alone (under-fitting).
"""

from __future__ import annotations

import math
import statistics

RISING, RISE, DROP, STUCK, SPIKE, BLOWUP, WINDOW, SETTLE, DIVERGE = 3, 0.02, 0.05, 0.05, 3.0, 10.0, 10, 3.0, 1.5
SHORT_STEPS, SHORT_VALIDATIONS = 100, 3
SHORT = "too short to judge"

ACTIONS = {
    "over-fitting": "stop earlier (eval.patience), regularise (optim.weight_decay, model.dropout), fewer trainable "
    "parameters (method.name: lora or frozen), fewer train.epochs, or more training data",
    "over-confident": "calibration (eval.calibrate: true, the default for single-label classification, folds a "
    "temperature into the saved model) or fewer train.epochs",
    "under-fitting": "train longer (train.epochs, train.max_steps), another learning rate (optim.lr), a larger model "
    "(model.name) or more trainable parameters (method.name: full, a larger method.r)",
    "unstable": "a lower learning rate (optim.lr), a longer warm-up (optim.warmup_ratio), gradient clipping "
    "(train.max_grad_norm), or fp32 (train.precision) if it happens under bf16",
    SHORT: "train longer (more train.epochs: each adds a validation), take more optimizer steps from the same examples "
    "(a smaller train.batch_size, e.g. 16 or 8), or validate more often (train.eval_every) to see where the metric "
    "levels off",
}


def diagnose(history: list[dict], metric: str, higher_is_better: bool, status: str = "completed",
             best_step=None, calibrated: bool = False) -> dict:  # fmt: skip
    """{"verdict", "findings": [{"kind", "step", "why", "act"} ...]} from metrics.jsonl's records. calibrated: the
    run folded a temperature into its saved model (said in an over-confidence finding)."""
    train = [(r["step"], r["loss"]) for r in history if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in history if "val_loss" in r]
    scores = [(r["step"], r[f"val_{metric}"]) for r in history if f"val_{metric}" in r]
    over = _over_fitting(train, val, status, best_step)
    confident = None if over else _over_confident(val, scores, higher_is_better, calibrated)
    # a validation loss rising at the end is never "still learning" (it is over-fitting or over-confidence)
    rising = len(val) >= 2 and val[-1][1] > val[-2][1]
    under = None if over or confident else _under_fitting(train, scores, higher_is_better, rising)
    findings = [f for f in (_unstable(history, train), over, confident, under) if f]
    if not findings:  # only in place of "neither": any other finding already says what the curves show
        findings = [f for f in (_too_short(history, scores, higher_is_better, rising, metric),) if f]
    for f in findings:
        f["act"] = ACTIONS[f["kind"]]
    verdict = ", ".join(f["kind"] for f in findings) or "neither over- nor under-fitting"
    return {"verdict": verdict, "findings": findings}


def _unstable(history: list[dict], train: list) -> dict | None:
    for i, (step, loss) in enumerate(train):
        if not math.isfinite(loss):
            return {"kind": "unstable", "step": step, "why": f"the training loss is {loss} at step {step}"}
        before = [x for _, x in train[max(0, i - WINDOW) : i]]
        # the level to compare with: the median of the losses logged before it; in the first few logs, the first loss
        # (the untrained model's, which a learning run stays below)
        level, of = (statistics.median(before), f"the median of the {len(before)} logged before it") \
            if len(before) >= 5 else (train[0][1], "the first logged loss")  # fmt: skip
        if i and loss > SPIKE * level:
            return {"kind": "unstable", "step": step, "why": f"the training loss spiked to {loss:.4g} at step {step}, "
                    f"{loss / level:.1f}x {of}"}  # fmt: skip
    diverged = _diverged(train)
    if diverged:
        return diverged
    norms = [(r["step"], r["grad_norm"]) for r in history if r.get("grad_norm") is not None]
    for i, (step, g) in enumerate(norms):
        if not math.isfinite(g):
            return {"kind": "unstable", "step": step, "why": f"the gradient norm is {g} at step {step}"}
        before = [x for _, x in norms[max(0, i - WINDOW) : i]]
        if len(before) < 5 or g <= BLOWUP * (level := statistics.median(before)):
            continue
        after = [x for _, x in norms[i + 1 : i + 1 + WINDOW] if math.isfinite(x)]
        if after and statistics.median(after) >= SETTLE * level:
            continue  # the norm stays at its new level: a shift (e.g. after warm-up), not a spike
        return {"kind": "unstable", "step": step, "why": f"the gradient norm jumped to {g:.4g} at step {step} "
                f"(the median before it: {level:.4g}) and fell back after it"}  # fmt: skip
    return None


def _diverged(train: list) -> dict | None:
    """The training loss ended far above the lowest it reached: the mean of the last fifth of the logged losses is
    DIVERGE times the lowest mean of an earlier fifth."""
    if len(train) < 10:
        return None
    fifth = len(train) // 5
    means = [statistics.fmean(x for _, x in train[k * fifth : (k + 1) * fifth]) for k in range(5)]
    low = min(means[:-1])
    if means[-1] > DIVERGE * low:
        return {"kind": "unstable", "step": train[means.index(low) * fifth + fifth][0],
                "why": f"the training loss diverged: {means[-1]:.4g} over the last fifth of the logged steps against "
                f"{low:.4g} over the best earlier fifth"}  # fmt: skip
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


def _under_fitting(train: list, scores: list, higher: bool, val_rising: bool) -> dict | None:
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
    if not end < start * (1 - DROP) or val_rising:
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


def _too_short(history: list[dict], scores: list, higher: bool, val_rising: bool, metric: str) -> dict | None:
    steps = max((r["step"] for r in history if "step" in r), default=0)
    if not scores or val_rising or (steps >= SHORT_STEPS and len(scores) >= SHORT_VALIDATIONS):
        return None
    best = (max if higher else min)(range(len(scores)), key=lambda k: scores[k][1])
    if best != len(scores) - 1:
        return None  # the metric peaked before the end: the curve shows its turn
    step, last = scores[-1]
    trend = f", up from {scores[-2][1]:.4g} at step {scores[-2][0]}" if len(scores) >= 2 else ""
    if len(scores) >= 2 and not higher:
        trend = trend.replace("up from", "down from")
    count = f"{len(scores)} validation" + ("s" if len(scores) != 1 else "")
    return {"kind": SHORT, "step": step,
            "why": f"{steps} optimizer steps and {count}, and the validation {metric} was best at the last one "
            f"({last:.4g} at step {step}{trend}): the run ended while the model may still have been improving, too "
            f"soon to tell over- from under-fitting (fewer than {SHORT_STEPS} steps or {SHORT_VALIDATIONS} "
            "validations)"}  # fmt: skip


def _over_confident(val: list, scores: list, higher: bool, calibrated: bool) -> dict | None:
    if len(val) < 2 or not scores:
        return None
    i = min(range(len(val)), key=lambda k: val[k][1])
    step, low = val[i]
    last_step, last = val[-1]
    if i == len(val) - 1 or last <= low * (1 + RISE):
        return None
    score = dict(scores)
    if step not in score or last_step not in score:
        return None
    better = score[last_step] >= score[step] if higher else score[last_step] <= score[step]
    if not better:
        return None
    undone = (
        "; the saved model is calibrated (eval.calibrate), which takes the over-confidence back" if calibrated else ""
    )
    return {"kind": "over-confident", "step": last_step,
            "why": f"the validation loss rose from {low:.4g} (step {step}) to {last:.4g} (step {last_step}) while the "
            f"validation metric went from {score[step]:.4g} to {score[last_step]:.4g}: the model gets more right but "
            f"grows more confident in its mistakes{undone}"}  # fmt: skip
