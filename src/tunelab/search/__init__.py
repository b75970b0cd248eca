"""`tunelab tune`: hyper-parameter search over a recipe, on Optuna.

    run_study.py  tune(): the study driver (check, open the study, run the trials here or in worker processes, write
                  the outputs) and StudyResult, its summary
    plan.py       Plan: the recipe and its search: block checked before the first trial
    space.py      the search space: parsing the search: block, sampling a trial's parameters, the metric checked
    study.py      the Optuna side: storage, sampler, pruner, the study lock, recovery of trials whose process died
    report.py     the outputs: trials.csv, best.yaml, best/, run.json, plots

study = tunelab.tune("recipes/tune_trec_frozen.yaml")
study.best_dir, study.best_value, study.best_params
"""

from tunelab.lazy import exports

__all__ = ["Plan", "StudyResult", "tune"]
# lazy: the driver imports torch (runs/rundir.py); study.py or space.py alone stay light
__getattr__, __dir__ = exports(__name__, {"Plan": "plan", "StudyResult": "run_study", "tune": "run_study"})
