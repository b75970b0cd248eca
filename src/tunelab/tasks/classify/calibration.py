"""Calibrated probabilities for single-label classification: temperature scaling (Guo et al., ICML 2017).

A fine-tuned classifier grows over-confident as it trains (validation loss rises while accuracy still improves), so
its softmax cannot be read as a probability. One temperature T, fitted on the validation split after the best
weights are restored, fixes most of it: p = softmax(z / T). The argmax does not change.

Dividing the logits by T equals dividing the weight and bias of the classifier's last linear layer by T, so T is
folded into the weights (`fold`): the saved model/ (and a LoRA run's head in adapter/) then gives calibrated
probabilities to every consumer — predict, eval, serve, a plain transformers pipeline — and nothing applies T twice.

    logits = validation_logits(...)                  # the best weights, every validation example
    t = fit_temperature(logits, labels)              # NLL, LBFGS on 1/T (the NLL is convex in 1/T)
    fold(model, spec, probe_batch, t)                # checked: the new logits are the old ones / T
    sums = CalibrationSums(scale=t)                  # test: NLL, ECE (15 bins), Brier of the uncalibrated logits
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tunelab.training.evaluate import evaluate

BINS = 15


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float | None:
    """The T minimising the mean NLL of softmax(logits / T). LBFGS on beta = 1/T in float64: NLL(z * beta) is
    convex in beta, so the one minimum is found to machine precision (the tests compare it with scipy). None where
    the minimum is at beta <= 0: logits that rank the classes no better than chance, which no temperature helps."""
    z, y = logits.detach().double(), labels.long()
    beta = torch.ones(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([beta], lr=1.0, max_iter=100, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")  # fmt: skip

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z * beta, y)
        loss.backward()
        return loss

    opt.step(closure)
    b = float(beta.detach())
    return 1.0 / b if np.isfinite(b) and b > 1e-3 else None


@torch.no_grad()
def fold(model, spec, probe: dict, t: float) -> bool:
    """Divide the classifier's last linear layer by `t` in place; True when the logits of `probe` became the old
    ones / t (checked, so an architecture whose head this does not find is left as it was and says so)."""
    executed: list = []
    hooks = [m.register_forward_hook(lambda mod, args, out: executed.append(mod))
             for m in model.modules() if isinstance(m, torch.nn.Linear)]  # fmt: skip
    was_training = model.training
    model.eval()
    try:
        before = spec.logits(model, probe).float()
    finally:
        for h in hooks:
            h.remove()
    # the last linear layer that ran with one output per class is the head's output (a LoRA run: PEFT's trained copy)
    head = next((m for m in reversed(executed) if m.out_features == before.shape[-1]), None)
    if head is None:
        model.train(was_training)
        return False
    head.weight.div_(t)
    if head.bias is not None:
        head.bias.div_(t)
    after = spec.logits(model, probe).float()
    model.train(was_training)
    if torch.allclose(after, before / t, rtol=1e-3, atol=1e-4):
        return True
    head.weight.mul_(t)  # not the whole head (e.g. LoRA on it): undo
    if head.bias is not None:
        head.bias.mul_(t)
    return False


def calibrate(model, spec, rows: list, batch_size: int, precision: str, rank: int = 0, world: int = 1) -> dict:
    """Fit T on `rows` (the validation split, best weights) and fold it into the model; the record metrics.json
    keeps under "calibration" (the test's before/after is added by the caller)."""
    if not rows:
        return {"applied": False, "why": "no validation split to fit the temperature on"}
    logits = Logits(len(rows), len(spec.names))
    evaluate(model, rows, [r["length"] for r in rows], spec, spec.new_metrics(), batch_size, precision, rank, world,
             also=logits)  # fmt: skip
    labels = np.asarray([r["labels"] for r in rows], dtype=np.int64)
    t = fit_temperature(torch.from_numpy(logits.array), torch.from_numpy(labels))
    if t is None:
        return {"applied": False, "why": "the validation logits rank the classes no better than chance: no "
                "temperature makes their probabilities better (the model is left as trained)"}  # fmt: skip
    device = next(model.parameters()).device
    probe = {k: v.to(device) for k, v in spec.collate(rows[:8]).items()}
    if not fold(model, spec, probe, t):
        return {"applied": False, "temperature": t,
                "why": "the classifier's last linear layer was not found (the model is left uncalibrated)"}  # fmt: skip
    return {"applied": True, "temperature": t, "fitted_on": "validation", "validation_n": len(rows),
            "validation": summary(logits.array, labels, t)}  # fmt: skip


class Logits:
    """An evaluate() accumulator that keeps every example's logits at its index (validation only: n x classes).
    The array is zero where another process's examples go, so summing across processes gathers them."""

    def __init__(self, n: int, classes: int):
        self.array = np.zeros((n, classes), dtype=np.float64)

    def update(self, logits: torch.Tensor, labels: torch.Tensor, index) -> None:
        self.array[np.asarray(index)] = logits.float().cpu().numpy()

    def state(self) -> np.ndarray:
        return self.array

    def load_state(self, total: np.ndarray) -> None:
        self.array = total


class CalibrationSums:
    """Streaming NLL, Brier score and reliability bins of softmax(logits * scale), summed across processes.

    ECE (Naeini et al., 2015): 15 equal-width bins of the top probability; sum over bins of n_b / n x
    |accuracy_b - confidence_b|. Brier: the mean over examples of sum over classes (p_c - [c = y])^2."""

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.sums = np.zeros(3 + 3 * BINS)  # n, NLL sum, Brier sum; per bin: count, confidence sum, correct sum

    def update(self, logits: torch.Tensor, labels: torch.Tensor, index=None) -> None:
        z = logits.double() * self.scale
        y = labels.long().to(z.device)
        logp = F.log_softmax(z, -1)
        p = logp.exp()
        conf, pred = p.max(-1)
        onehot = F.one_hot(y, p.shape[-1]).double()
        b = torch.clamp((conf * BINS).long(), max=BINS - 1).cpu().numpy()
        bins = np.zeros((3, BINS))
        np.add.at(bins[0], b, 1)
        np.add.at(bins[1], b, conf.cpu().numpy())
        np.add.at(bins[2], b, (pred == y).double().cpu().numpy())
        nll = float(-logp.gather(-1, y[:, None]).sum())
        brier = float(((p - onehot) ** 2).sum())
        self.sums += np.concatenate([[len(y), nll, brier], bins.ravel()])

    def state(self) -> np.ndarray:
        return self.sums

    def load_state(self, total: np.ndarray) -> None:
        self.sums = total

    def compute(self) -> dict:
        n, nll, brier = self.sums[:3]
        count, conf, correct = self.sums[3:].reshape(3, BINS)
        ece = float(np.abs(correct - conf).sum() / n) if n else 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            bins = [{"low": i / BINS, "high": (i + 1) / BINS, "n": int(count[i]),
                     "confidence": float(conf[i] / count[i]) if count[i] else None,
                     "accuracy": float(correct[i] / count[i]) if count[i] else None} for i in range(BINS)]  # fmt: skip
        return {"nll": float(nll / n) if n else 0.0, "ece": ece, "brier": float(brier / n) if n else 0.0, "bins": bins}


def summary(logits: np.ndarray, labels: np.ndarray, t: float) -> dict:
    """NLL, ECE and Brier of validation logits before (T = 1) and after (T = t)."""
    out = {}
    for name, scale in (("before", 1.0), ("after", 1.0 / t)):
        sums = CalibrationSums(scale)
        sums.update(torch.from_numpy(logits), torch.from_numpy(labels))
        out[name] = {k: v for k, v in sums.compute().items() if k != "bins"}
    return out
