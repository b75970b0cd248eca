"""What every task story shares: the selection metric, the resume check, and the steps prepare -> fit -> best -> test ->
outputs (`Story`), so a family writes only what differs."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from typing import Any, Callable

from tunelab.config import Config
from tunelab.errors import TunelabError
from tunelab.metrics.plots import plot_curves
from tunelab.registry import TASKS
from tunelab.runs.card import model_card
from tunelab.runs.checkpoint import restore_best
from tunelab.runs.model_dir import save_model
from tunelab.runs.rundir import RunDir
from tunelab.training.diagnosis import diagnose
from tunelab.training.distributed import launcher, make_accelerator, resolve_strategy, seed_everything
from tunelab.training.evaluate import evaluate
from tunelab.training.fit import FitContext, fit
from tunelab.training.fsdp import gathered
from tunelab.training.precision import resolve as resolve_precision


def selection_metric(cfg: Config, spec) -> tuple[str, bool]:
    """(metric, higher_is_better) from eval.metric/eval.mode; the registry's default metric when the recipe says auto.
    The direction of any metric is its metrics object's (the registry's `mode` states it for the default)."""
    metric = TASKS[cfg.task].metric if cfg.eval.metric == "auto" else cfg.eval.metric
    known = spec.new_metrics().higher_is_better
    if metric not in known and metric != "loss":
        raise TunelabError(
            f"eval.metric '{metric}' is not a metric of task '{cfg.task}'. Choose one of: {', '.join(known)}."
        )
    higher = known.get(metric, False) if cfg.eval.mode == "auto" else cfg.eval.mode == "max"
    return metric, higher


def check_same_data(run, fingerprint: str, resume: bool) -> None:
    """Resume refuses data other than the data the run started with."""
    before = run.info.get("data", {}).get("fingerprint")
    if resume and before not in (None, fingerprint):
        raise TunelabError(
            f"{run.path}: the data changed since this run started (fingerprint {before} -> {fingerprint}). "
            f"Resume only with the same data, or start a new run."
        )


def tokenizer_id(tokenizer, source) -> str:
    return hashlib.sha256(
        f"{source.location}|{source.gguf_file}|{type(tokenizer).__name__}|{len(tokenizer)}".encode()
    ).hexdigest()[:12]


def versions() -> dict:
    from importlib.metadata import version

    import torch
    import transformers

    import tunelab

    return {
        "tunelab": tunelab.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": version("peft"),  # from its metadata: importing peft costs 0.2 s a run that trains no adapter
    }


# ------------------------------------------------------------------ the steps every task story shares


@dataclass
class Story:
    """What a task story runs with: the recipe, its run directory, the processes, and how it reports progress."""

    cfg: Config
    run: RunDir
    accelerator: Any
    precision: str  # resolved: bf16, fp16 or fp32
    resume: bool
    show_progress: bool
    on_step: Callable[[int], None]
    on_validation: Callable[[int, dict], bool]  # after each validation; True stops the run as "pruned"
    pruned: bool = False  # a search stopped it: no test and no model/ (it will not be used)
    strategy: str = "ddp"  # distributed.strategy resolved: ddp or fsdp

    @classmethod
    def set_up(
        cls, cfg: Config, run: RunDir, resume: bool, show_progress: bool, on_step, on_validation=None
    ) -> "Story":
        """A new story: processes set up (threads, DDP) and every generator seeded, before any data or model is made."""
        accelerator = make_accelerator(cfg.train.num_threads, cfg.train.device, cfg.distributed.timeout_s)
        strategy = resolve_strategy(cfg.distributed.strategy, accelerator.num_processes)
        seed_everything(cfg.train.seed)
        precision = resolve_precision(cfg.train.precision, accelerator.device)
        on_validation = on_validation or (lambda step, metrics: False)
        return cls(cfg, run, accelerator, precision, resume, show_progress, on_step, on_validation, strategy=strategy)

    @property
    def rank0(self) -> bool:
        return self.accelerator.is_main_process

    def record_start(self, source, selection: tuple[str, bool], **fields) -> None:
        """run.json and config.yaml as training starts: the fields every task writes, and the task's own."""
        if not self.rank0:
            return
        cfg = self.cfg
        base_model = {"name": cfg.model.name, "location": source.location, "gguf_file": source.gguf_file}
        metric, higher = selection
        self.run.update_info(
            task=cfg.task,
            **self.run.lineage,  # kind and parent: a training run, or a search's trial
            status="running",
            versions=versions(),
            distributed={
                "strategy": self.strategy,
                "processes": self.accelerator.num_processes,
                "launcher": launcher(),
            },
            pipeline_tag=TASKS[cfg.task].pipeline_tag,
            base_model=base_model | {"sha256": source.content_hash()},
            **fields,
            selection={"metric": metric, "mode": "max" if higher else "min"},
        )
        (self.run / "config.yaml").write_text(cfg.to_yaml(relevant_only=True), encoding="utf-8")  # its task and method

    def fit_best(self, model, spec, train: list, validation: list, selection: tuple[str, bool]):
        """The shared loop, then the best checkpoint's weights back in the model: (model, FitResult)."""
        cfg = self.cfg
        context = FitContext(self.run, self.accelerator, self.precision, self.resume, self.show_progress,
                             self.on_step, self.on_validation, strategy=self.strategy)  # fmt: skip
        result = fit(model, spec, train, validation, cfg.train, cfg.optim, cfg.eval, selection, context)
        self.pruned = result.status == "pruned"
        # fsdp: the shards gathered into the plain model, whole on every process; ddp: the module inside DDP
        model = gathered(model) if self.strategy == "fsdp" else self.accelerator.unwrap_model(model)
        restore_best(model, self.run.checkpoints)
        return model, result

    def test(self, model, spec, rows: list, also=None) -> dict:
        """Loss and metrics on held-out rows ({} when there are none, or the run was pruned), across processes;
        `also`: an accumulator that sees every batch too (the classify family's error analysis)."""
        if not len(rows) or self.pruned:
            return {}
        a = self.accelerator
        batch = self.cfg.eval.batch_size
        return evaluate(
            model,
            rows,
            lengths(rows),
            spec,
            spec.new_metrics(),
            batch,
            self.precision,
            a.process_index,
            a.num_processes,
            also=also,
        )

    def outputs(
        self, model, tokenizer, metrics: dict, result, selection: tuple[str, bool], card_extra: str = ""
    ) -> dict:
        """model/ (+ adapter/), metrics.json (with the fit diagnosis of the curves), curves.png, the final run.json
        and the model card; returns run.json.
        A pruned run keeps its record (metrics, curves, run.json) but no model and no checkpoints."""
        cfg, run = self.cfg, self.run
        metric, higher = selection
        if self.pruned:
            shutil.rmtree(run.checkpoints, ignore_errors=True)
        else:
            save_model(model, tokenizer, run.path)
        history = run.history()
        calibrated = bool((metrics.get("calibration") or {}).get("applied"))
        metrics["diagnosis"] = diagnose(history, metric, higher, result.status, result.best_step, calibrated)
        run.write_json("metrics.json", metrics)
        title = f"{cfg.task}: {cfg.model.name} ({cfg.method.name})"
        marks = [(f["step"], f["kind"]) for f in metrics["diagnosis"]["findings"]]
        plot_curves(history, metric, run / "curves.png", title=title, higher_is_better=higher, marks=marks)
        info = run.update_info(**result.run_info(metric))
        (run / "README.md").write_text(model_card(info, cfg, metrics) + card_extra, encoding="utf-8")
        return info


def lengths(rows) -> list[int]:
    return [r["length"] for r in rows]
