"""The Python API — what the CLI and users call.

run = tunelab.train("recipes/classify_movie_reviews.yaml", overrides={"train.max_steps": 50})
clf = tunelab.load(run.dir); clf.predict(["what a wonderful film"])
tunelab.evaluate(run.dir, "test.csv"); tunelab.export(run.dir, "exported/")
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from tunelab.config import DEMO_RECIPE, Config, load_config
from tunelab.errors import TunelabError
from tunelab.registry import TASKS, load_object
from tunelab.runs.rundir import RunDir


@dataclass
class Run:
    dir: Path
    metrics: dict = field(default_factory=dict)

    @property
    def info(self) -> dict:
        return RunDir(self.dir).info


def _recipe_or_demo(config, overrides: Optional[dict]):
    """The recipe given; else the demo's when it is the demo's task; else none (another task's own defaults: the demo
    recipe's fields — its metric, method and learning rate — are the classifier's, not that task's)."""
    if config is not None:
        return config
    task = (overrides or {}).get("task")
    return DEMO_RECIPE if task in (None, Config.model_fields["task"].default) else None  # the demo's task


def train(
    config: Union[str, Path, dict, Config, None] = None,
    *,
    overrides: Optional[dict] = None,
    resume: Union[str, Path, None] = None,
    overwrite: bool = False,
    show_progress: bool = True,
    on_step: Optional[Callable[[int], None]] = None,
    on_validation: Optional[Callable[[int, dict], bool]] = None,
    lineage: Optional[dict] = None,
) -> Run:
    """Fine-tune as the recipe says (no recipe: the demo's).

    `resume=RUN_DIR` continues an interrupted run exactly where it stopped. `on_step(step)` is called after every
    optimizer step; `on_validation(step, metrics)` after every validation, and returning True there stops the run
    (status "pruned": how a hyper-parameter search prunes a trial). `lineage` is run.json's kind and parent for a run
    that belongs to another ({"kind": "trial", "parent": study_dir}).

    A recipe's `search:` block is for `tunelab tune`: train trains the base recipe and says the block was ignored."""
    if resume is not None:
        # silently: an older run's config.yaml holds the fields of every task family
        cfg = load_config(RunDir.open(resume) / "config.yaml", overrides, warn=False)
    else:
        cfg = load_config(_recipe_or_demo(config, overrides), overrides)
    if cfg.search is not None:
        cfg.search = None
        if int(os.environ.get("RANK", 0)) == 0:
            print("The recipe's search: block was ignored: train trains the base recipe (tunelab tune RECIPE runs the "
                  "search).", file=sys.stderr)  # fmt: skip
    if cfg.train.folds and resume is None:  # K fold runs under one parent (tunelab/cv), each made by this function
        from tunelab.cv import cross_validate

        return Run(*cross_validate(cfg, train, overwrite, show_progress))
    if cfg.distributed.ray is not None:  # each Ray Train worker comes back here, and trains
        from tunelab.training import ray_train

        if not ray_train.inside_worker():
            if on_step is not None or on_validation is not None:
                raise TunelabError(
                    "distributed.ray trains in Ray Train's worker processes, which cannot call back into this one "
                    "(on_step, on_validation: a search's pruner). A search runs its trials on Ray with tunelab tune "
                    "--ray; remove distributed.ray from the recipe."
                )
            return ray_train.train_on_ray(cfg, resume, overwrite, show_progress, lineage, overrides)
    import torch

    threads = torch.get_num_threads()  # train.num_threads applies to this run only, not to the caller's process
    try:
        return _train(cfg, resume, overwrite, show_progress, on_step, on_validation, lineage)
    finally:
        torch.set_num_threads(threads)


def _train(cfg: Config, resume, overwrite: bool, show_progress: bool, on_step, on_validation, lineage) -> Run:
    from tunelab.training.memory import PeakRSS

    run = RunDir.open(resume) if resume is not None else _create_run_dir(cfg, overwrite, lineage)
    main = int(os.environ.get("RANK", 0)) == 0
    peak = PeakRSS()  # this run's peak memory (not the process's: a tune worker or a test session runs many)
    try:
        with peak:
            story = load_object(TASKS[cfg.task].story)
            metrics = story(cfg, run, resume is not None, show_progress, on_step, on_validation)
    except BaseException as e:
        from tunelab.training.distributed import peer_lost
        from tunelab.training.fit import Interrupted

        status = "interrupted" if isinstance(e, (Interrupted, KeyboardInterrupt)) else "failed"
        if (run / "run.json").exists():  # a process of the run that died: the paragraph naming it
            run.update_info(status=status, error=None if status == "interrupted" else str(peer_lost(e) or e)[:2000],
                            peak_rss_mb=_peak_mb(run, peak))  # fmt: skip
        elif main:
            run.discard_if_empty()
        raise
    if main:
        run.update_info(peak_rss_mb=_peak_mb(run, peak))
        run.finish()
    return Run(run.final, metrics)


def _peak_mb(run: RunDir, peak) -> int:
    """run.json's peak_rss_mb: this process's highest RSS during the run (the main process's, under torchrun), the
    largest of its sessions when it was resumed."""
    return max(peak.mb, int((run.info or {}).get("peak_rss_mb") or 0))


def _create_run_dir(cfg: Config, overwrite: bool, lineage: Optional[dict]) -> RunDir:
    """The main process creates the run directory; under torchrun the others then open the same one."""
    from tunelab.training.distributed import broadcast, make_accelerator

    result = None
    if make_accelerator(cfg.train.num_threads, cfg.train.device, cfg.distributed.timeout_s).is_main_process:
        try:
            created = RunDir.create(cfg.train.output_dir, cfg.task, overwrite=overwrite)
            result = (created.path, created.final, created.created)
        except TunelabError as e:
            result = e
    result = broadcast(result)  # every process raises the same error, or opens the same directory
    if isinstance(result, TunelabError):
        raise result
    return RunDir(*result, lineage=lineage)


def load(run_dir: Union[str, Path]):
    """A predictor for a finished run: TextClassifier (classification), EntityTagger (ner), Generator (sft, lm)."""
    from tunelab.predictors import load as load_predictor

    return load_predictor(run_dir)


def evaluate(run_dir: Union[str, Path], data: Union[str, Path]) -> dict:
    """Metrics of a finished run on a labelled file (the run's column names and preprocessing)."""
    return load(run_dir).evaluate(data)


def ensemble(
    members: Sequence[Union[str, Path]] = (),
    *,
    out: Union[str, Path],
    method: str = "mean",
    from_folds: Union[str, Path, None] = None,
    data: Union[str, Path, None] = None,
    overwrite: bool = False,
) -> Run:
    """An ensemble run directory of finished runs (and/or a cross-validation's folds): `mean` averages their
    probabilities, `weighted` weighs each by its validation metric, `vote` takes the majority label. Run.metrics is
    the report: the ensemble and each member on the members' test split (or `data`). tunelab.load(out) predicts."""
    from tunelab.ensembles import build
    from tunelab.predictors import load as load_predictor

    path, report = build([Path(m) for m in members], Path(out), method, Path(from_folds) if from_folds else None,
                         Path(data) if data else None, overwrite, load_predictor)  # fmt: skip
    return Run(path, report)


def export(
    run_dir: Union[str, Path],
    out: Union[str, Path],
    format: str = "hf",
    quantize: Optional[str] = None,
    check_data: Optional[Union[str, Path]] = None,
) -> Path:
    """The run's model written to `out` in `format`: "hf" (a standalone copy of the plain, merged Hugging Face model),
    "onnx" (encoder runs; quantize "int8") or "gguf" (causal-LM runs; quantize "f16" or "q8_0"), each checked
    against the run's model as it is written (tunelab/exports)."""
    from tunelab.exports import export as write_export

    return write_export(run_dir, out, format, quantize, check_data)
