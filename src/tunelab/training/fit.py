"""The training loop every task family shares. It reads top to bottom:

    for each optimizer step:
        take the step's examples (sampler), this process's share of them (shard), split into micro-batches
        forward + backward each micro-batch, loss normalised over the whole step's units (examples or tokens)
        clip, step, schedule (fp16: the loss scaled for backward, gradients unscaled before clipping)
        log; validate; keep the best; checkpoint; stop early / when on_validation asks / on signal / on NaN

A task family hands the loop a `spec` with four things: collate(rows), units(batch), forward(model, batch)
-> (outputs, loss summed over units), and new_metrics(); optionally generation_metrics(model) -> {metric: value},
measured after each validation's loss pass (text-to-text: scores of generated outputs).
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np
import torch

from tunelab.config import EvalConfig, OptimConfig, TrainConfig
from tunelab.data.sampler import StepSampler, micro_batches, shard
from tunelab.errors import TunelabError
from tunelab.runs.checkpoint import Checkpointer
from tunelab.runs.rundir import RunDir
from tunelab.training import fsdp as fsdp2
from tunelab.training.distributed import all_reduce_sum
from tunelab.training.early_stopping import EarlyStopper
from tunelab.training.evaluate import evaluate
from tunelab.training.optim import build_optimizer, build_scheduler
from tunelab.training.precision import autocast, needs_scaler
from tunelab.training.progress import Bar
from tunelab.training.report import reporters


class TaskSpec(Protocol):
    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]: ...
    def units(self, batch: dict) -> int: ...
    def forward(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]: ...
    def new_metrics(self): ...


@dataclass
class FitResult:
    step: int
    best_step: Optional[int]
    best_value: Optional[float]
    best_metrics: dict = field(default_factory=dict)
    status: str = "completed"  # completed | stopped_early | pruned (interrupted raises Interrupted)
    train_seconds: float = 0.0

    def metrics(self) -> dict:
        """What metrics.json reports of the training itself (the task adds its test results)."""
        return {
            "validation": self.best_metrics,
            "best_step": self.best_step,
            "steps": self.step,
            "status": self.status,
            "train_seconds": round(self.train_seconds, 1),
        }

    def run_info(self, metric: str) -> dict:
        """What run.json records at the end of training."""
        return {
            "status": self.status,
            "best": {"step": self.best_step, "metric": metric, "value": self.best_value},
            "train_seconds": round(self.train_seconds, 1),
            "steps": self.step,
        }


class Interrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was saved."""


class NonFiniteLoss(TunelabError):
    pass


@dataclass
class FitContext:
    """Where and how fit runs: the run directory, the processes, the precision, and who hears of its progress."""

    run: RunDir
    accelerator: Any
    precision: str  # resolved: bf16, fp16 (with a gradient scaler) or fp32
    resume: bool = False
    show_progress: bool = True
    on_step: Callable[[int], None] = lambda step: None  # after every optimizer step
    # after every validation, with its scalar metrics; returning True stops the run now as "pruned" (a search pruner)
    on_validation: Callable[[int, dict], bool] = lambda step, metrics: False
    strategy: str = "ddp"  # resolved distributed.strategy: ddp (accelerate's DDP) or fsdp (training/fsdp.py)


def fit(
    model,
    spec: TaskSpec,
    train_rows: Sequence[dict],
    val_rows: Sequence[dict],
    train: TrainConfig,
    optim: OptimConfig,
    evaluation: EvalConfig,
    selection: tuple[str, bool],
    context: FitContext,
) -> FitResult:
    """Train `model` on rows (each with a `length`) as train/optim/evaluation say; `selection` is the (metric,
    higher_is_better) that picks the best checkpoint."""
    t, run, accelerator, precision = train, context.run, context.accelerator, context.precision
    metric, higher_is_better = selection
    resume, show_progress, on_step = context.resume, context.show_progress, context.on_step
    train_lengths, val_lengths = [r["length"] for r in train_rows], [r["length"] for r in val_rows]
    rank, world = accelerator.process_index, accelerator.num_processes
    device = accelerator.device
    micro_bs = t.micro_batch_size or t.batch_size
    lengths = np.asarray(train_lengths)

    # ---- the plan: which examples make each step, how many steps
    sampler = StepSampler(list(lengths), t.batch_size, t.seed, t.group_by_length, longest_first=t.longest_first)
    steps_per_epoch = sampler.steps_per_epoch()
    total_steps = t.max_steps or max(1, math.ceil(t.epochs * steps_per_epoch))
    if t.max_tokens:  # token budget: about max_tokens tokens go through training
        total_steps = min(total_steps, max(1, math.ceil(t.max_tokens / (lengths.mean() * t.batch_size))))
    eval_every = t.eval_every or steps_per_epoch
    save_every = t.save_every or eval_every

    # ---- the pieces
    fsdp = context.strategy == "fsdp"
    if fsdp and hasattr(spec, "generation_metrics"):
        raise TunelabError(
            "distributed.strategy: fsdp does not yet run the generation metrics of text-to-text tasks during "
            "validation (every process would have to generate in step). Use distributed.strategy: ddp for this task."
        )
    model.to(device)
    if fsdp:  # before the optimizer, which then holds and steps this process's shards only
        model = fsdp2.shard(model, device)
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim, total_steps)
    if not fsdp:
        model, optimizer = accelerator.prepare(model, optimizer)
    raw_model = model if fsdp else accelerator.unwrap_model(model)
    if t.compile:  # the training forward only: evaluation and checkpoints use the plain module (same parameters)
        model = torch.compile(model, dynamic=True)
    params = [p for p in model.parameters() if p.requires_grad]
    # fp16: the loss is scaled up for backward so small gradients do not flush to zero; a step whose gradients
    # overflow is skipped and the scale halved. Disabled (bf16, fp32), every scaler call below passes through.
    scaler = torch.amp.GradScaler(device.type, enabled=needs_scaler(precision))
    checkpointer = Checkpointer(
        run.checkpoints, rank, world, gather=fsdp2.trainable_state if fsdp else None, sharded=fsdp
    )
    stopper = EarlyStopper(metric, higher_is_better, evaluation.patience)
    best_metrics: dict = {}

    # ---- where we start: fresh, or exactly where a checkpoint left off
    step, epoch, batch_in_epoch = 0, 0, 0
    window = np.zeros(2)  # since the last log line: this process's loss sum and real tokens
    window_units = 0.0  # ... and the units (examples or tokens) of all processes
    if resume:
        ckpt = checkpointer.latest()
        if ckpt is None:
            raise TunelabError(
                f"{run.path}: no checkpoint to resume from (the run stopped before its first save). Start it again "
                "without --resume."
            )
        # any strategy and number of processes: a sharded (fsdp) checkpoint is resharded to this run's processes
        state = checkpointer.load(ckpt, raw_model, getattr(optimizer, "optimizer", optimizer))  # not accelerate's
        scheduler.load_state_dict(state["scheduler"])
        stopper.load_state_dict(state["stopper"])
        if state.get("scaler"):  # fp16 runs: the loss scale it had reached (older checkpoints have none)
            scaler.load_state_dict(state["scaler"])
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        # the log window's loss and tokens are summed over the processes that wrote it: rank 0 carries them on
        window = np.asarray(state["window"]) if rank == 0 else np.zeros(2)
        window_units, best_metrics = state["window_units"], state["best_metrics"]
        if rank == 0:
            run.truncate_history(step)

    def trainer_state() -> dict:
        return {
            "optimizer": None if fsdp else optimizer.state_dict(),  # fsdp: in the checkpoint's sharded/
            "strategy": context.strategy,
            "world_size": world,
            "scheduler": scheduler.state_dict(),
            "stopper": stopper.state_dict(),
            "scaler": scaler.state_dict(),  # {} unless fp16
            "step": step,
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "window": all_reduce_sum(window).tolist(),  # every process's share, so any number can resume
            "window_units": window_units,
            "best_metrics": best_metrics,
        }

    def save() -> None:
        checkpointer.save(step, raw_model, trainer_state(), accelerator.wait_for_everyone, optimizer)

    status = "completed"
    started = time.perf_counter()
    last_log = time.perf_counter()
    with (
        _catch_signals() as signalled,
        Bar("train", total_steps, enabled=show_progress and rank == 0, completed=step) as bar,
        reporters(t.report_to, run.path, rank == 0, step) as report,
    ):
        model.train()
        while step < total_steps and status == "completed":
            batches = sampler.epoch(epoch)
            while batch_in_epoch < len(batches) and step < total_steps:
                # ---- one optimizer step
                mine = shard(batches[batch_in_epoch], rank, world)
                micros = [
                    spec.collate([train_rows[int(i)] for i in mb]) for mb in micro_batches(mine, micro_bs, lengths)
                ]
                step_units = all_reduce_sum(float(sum(spec.units(b) for b in micros)))
                real = len(micros)
                if fsdp and (extra := fsdp2.forwards_to_match(real)):  # each forward is a collective under fsdp:
                    # as many as the busiest process, the extra ones on a stand-in example that counts for nothing
                    micros += [spec.collate([train_rows[int(batches[batch_in_epoch][0])]])] * extra
                step_loss = torch.zeros((), device=device)
                for k, batch in enumerate(micros):
                    batch = {name: v.to(device, non_blocking=True) for name, v in batch.items()}
                    last = k == len(micros) - 1
                    sync = contextlib.nullcontext() if last else _no_sync(model, accelerator, fsdp)
                    with sync:
                        with autocast(precision, device):
                            outputs, loss_sum = spec.forward(model, batch)
                        del outputs
                        if k >= real:
                            loss_sum = loss_sum * 0.0
                        # DDP and FSDP average gradients over processes; scale so the step's gradient is the sum over
                        # all units divided by their total (batch 8 x accum 1 == batch 2 x accum 4 == 2 processes x 4)
                        accelerator.backward(scaler.scale(loss_sum * (world / step_units)))
                    step_loss += loss_sum.detach().float()
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                grad_norm = torch.nn.utils.clip_grad_norm_(params, optim.max_grad_norm or float("inf"))
                grad_norm = fsdp2.global_norm(grad_norm)  # fsdp: the global norm of the sharded gradients
                # under fp16 an infinite gradient is the scaler's overflow (it skips this step and lowers its scale);
                # otherwise a non-finite loss or gradient means training diverged
                overflow = scaler.is_enabled() and torch.isfinite(step_loss) and not torch.isfinite(grad_norm)
                if not overflow and (not torch.isfinite(grad_norm) or not torch.isfinite(step_loss)):
                    optimizer.zero_grad(set_to_none=True)
                    raise NonFiniteLoss(
                        f"Training diverged at step {step + 1}: the loss or gradient is "
                        f"{float(step_loss):.3g}/{float(grad_norm):.3g} (not finite). "
                        f"The last good checkpoint is in {run.checkpoints}. Lower optim.lr, keep optim.max_grad_norm "
                        "set, or use precision: fp32."
                    )
                lr = scheduler.get_last_lr()[0]
                scaler.step(optimizer)  # optimizer.step(), unless fp16 gradients overflowed
                scaler.update()
                if not overflow:  # the schedule counts real updates: a skipped step spends no warm-up
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                batch_in_epoch += 1
                window += [float(step_loss), float(lengths[mine].sum())]
                window_units += step_units

                # ---- log
                record = {}
                if step % t.log_every == 0 or step == total_steps:
                    loss_sum_all, tokens_all = all_reduce_sum(window)
                    now = time.perf_counter()
                    record = {
                        "step": step,
                        "epoch": round(epoch + batch_in_epoch / len(batches), 4),
                        "loss": loss_sum_all / max(window_units, 1),
                        "lr": lr,
                        # None on a skipped fp16 step: its inf/nan is the scaler's overflow, not instability
                        "grad_norm": None if overflow else float(grad_norm),
                        "tokens_per_s": tokens_all / max(now - last_log, 1e-9),
                    }
                    last_log, window, window_units = now, np.zeros(2), 0.0
                    bar.update(step, loss=record["loss"], lr=lr, **{"tok/s": f"{record['tokens_per_s']:.0f}"})
                else:
                    bar.update(step)

                # ---- validate, keep the best, stop early
                end_of_epoch = batch_in_epoch == len(batches)
                if len(val_rows) and (
                    step % eval_every == 0 or step == total_steps or (t.eval_every is None and end_of_epoch)
                ):
                    val = evaluate(
                        raw_model,
                        val_rows,
                        val_lengths,
                        spec,
                        spec.new_metrics(),
                        evaluation.batch_size,
                        precision,
                        rank,
                        world,
                    )
                    if hasattr(spec, "generation_metrics"):  # text-to-text: ROUGE, BLEU, chrF of generated outputs
                        val |= spec.generation_metrics(raw_model)
                    scalars = {k: v for k, v in val.items() if isinstance(v, (int, float))}
                    record.update(
                        {"step": step, "epoch": round(epoch + batch_in_epoch / len(batches), 4)}
                        | {f"val_{k}": v for k, v in scalars.items()}
                    )
                    if metric not in val:
                        raise TunelabError(
                            f"eval.metric '{metric}' is not computed for this task. Available: {', '.join(scalars)}."
                        )
                    if stopper.update(val[metric], step):
                        best_metrics = scalars
                        checkpointer.save_best(raw_model)
                    bar.print(
                        f"step {step}: validation " + "  ".join(f"{k} {v:.4f}" for k, v in scalars.items() if k != "n")
                    )
                    if stopper.should_stop:
                        status = "stopped_early"
                    if context.on_validation(step, scalars):  # e.g. a search's pruner: this trial will not win
                        status = "pruned"
                if record and rank == 0:
                    run.log(record)
                    report(record)  # train.report_to (TensorBoard)
                on_step(step)
                if signalled():
                    status = "interrupted"
                if status != "completed" or step % save_every == 0 or step == total_steps:
                    save()
                if status != "completed":
                    break
            if batch_in_epoch == len(batches):
                epoch, batch_in_epoch = epoch + 1, 0
    if status == "interrupted":
        raise Interrupted(step)
    return FitResult(step, stopper.best_step, stopper.best, best_metrics, status, time.perf_counter() - started)


@contextlib.contextmanager
def _no_sync(model, accelerator, fsdp: bool):
    """A micro-batch that is not the step's last: gradients accumulate here, reduced over processes with the last."""
    if not fsdp:
        with accelerator.no_sync(model):
            yield
        return
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


@contextlib.contextmanager
def _catch_signals():
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint after the current step and stops."""
    flag = {"hit": False}

    def handler(signum, frame):
        flag["hit"] = True

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: no signal handling
        pass
    try:
        yield lambda: flag["hit"]
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
