"""The model card (README.md in the run directory): what was trained, on what, how, and how well.

A card is shareable as it is: no path of the machine that trained it (local models and files by name only), only the
recipe fields of this task and method, and how to use the run with tunelab (from the task registry).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tunelab.config import Config
from tunelab.registry import TASKS


def _name_only(value):
    """A path of this machine by its last part; anything else (a built-in or hub name, null) as it is."""
    return Path(str(value)).name if value and Path(str(value)).is_absolute() else value


def _shareable(info: dict) -> dict:
    """run.json without this machine's paths: a local base model or data file by its name only."""
    info = json.loads(json.dumps(info, default=str))
    base, data = info.get("base_model") or {}, info.get("data") or {}
    if base.get("location") and Path(str(base["location"])).is_absolute():
        base["location"] = None  # a local directory (the sha256 identifies the weights)
        base["name"] = _name_only(base.get("name"))
    if data.get("source") and not str(data["source"]).startswith("built-in:"):
        data["source"] = Path(str(data["source"])).name  # relative file names too
    return info


def card_recipe(cfg: Config) -> str:
    """The recipe as the card shows it: the fields of its task and method, files and local models by name, no
    output directory."""
    raw = cfg.dump(relevant_only=True)
    for key in ("train", "validation", "test"):
        raw["data"][key] = Path(raw["data"][key]).name if raw["data"].get(key) else raw["data"].get(key)
    raw["model"]["name"] = _name_only(raw["model"]["name"])
    raw["train"].pop("output_dir")
    return yaml.safe_dump(raw, sort_keys=False)


def _fit(metrics: dict) -> str:
    """The fit diagnosis and, for single-label classification, the calibration."""
    lines = []
    diagnosis = metrics.get("diagnosis")
    if diagnosis:
        lines += ["## Fit", "", f"**{diagnosis['verdict']}** (from the logged curves, curves.png)."]
        lines += [f"- {f['kind']} from step {f['step']}: {f['why']}. What acts on it: {f['act']}."
                  for f in diagnosis["findings"]]  # fmt: skip
        lines.append("")
    cal = metrics.get("calibration") or {}
    if cal.get("applied") and "test" in cal:
        b, a = cal["test"]["before"], cal["test"]["after"]
        lines += ["## Calibration", "", f"Temperature {cal['temperature']:.4f}, fitted on the validation split and "
                  "folded into the classifier's last layer: the probabilities of model/ are calibrated.", "",
                  "| test | before | after |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {k} | {b[k]:.4f} | {a[k]:.4f} |" for k in ("nll", "ece", "brier")] + [""]
    return "\n".join(lines) + ("\n" if lines else "")


def _use_it(pipeline_tag: str, usage: str, pipeline: bool) -> str:
    """`pipeline`: transformers has a pipeline for the tag (the registry's); without one, the family's own card part
    (after the recipe) says how to generate with plain transformers."""
    if not pipeline:
        return f"`{usage}`, or with plain transformers: the model class, the prompt template and `generate`, below."
    return f"""```python
from transformers import pipeline
pipe = pipeline("{pipeline_tag}", model="model")   # this run's model/ folder, no tunelab needed
```
or `{usage}`."""


def model_card(info: dict, cfg: Config, metrics: dict) -> str:
    info = _shareable(info)
    recipe_yaml = card_recipe(cfg)
    test = metrics.get("test", {})
    scalars = {k: v for k, v in test.items() if isinstance(v, (int, float))}
    rows = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in scalars.items())
    data, base = info.get("data", {}), info.get("base_model", {})
    family = TASKS.get(info.get("task"))
    pipeline_tag = info.get("pipeline_tag") or (family.pipeline_tag if family else "text-classification")
    method = info.get("method", {}).get("name")
    trained = f"{info.get('trainable_params', 0):,} of {info.get('total_params', 0):,} parameters trained"
    sizes = f"train {data.get('train')}, validation {data.get('validation')}, test {data.get('test')} examples"
    where = f"{base['location']}, " if base.get("location") else ""
    labels = info.get("labels") or {}
    label_line = f"\n- **Labels:** {', '.join(map(str, labels.values()))}" if len(labels) > 1 else ""
    usage = family.usage.replace("RUN", "<this run>") if family else "tunelab predict <this run> ..."
    return f"""---
library_name: transformers
pipeline_tag: {pipeline_tag}
base_model: {base.get("name")}
tags: [tunelab, {info.get("task")}, {method}]
---
# {info.get("task")} model fine-tuned with tunelab

- **Base model:** `{base.get("name")}` ({where}sha256 {base.get("sha256")})
- **Method:** {method} — {trained}
- **Data:** {data.get("source")} — {sizes}
  (fingerprint {data.get("fingerprint")}; {data.get("dropped_duplicates", 0)} duplicate texts dropped before splitting)\
{label_line}
- **Best validation:** {info.get("best", {})}
- **Training time:** {info.get("train_seconds", 0):.0f} s; status {info.get("status")}

## Test results
| metric | value |
|---|---|
{rows}

{_fit(metrics)}
## Use it
{_use_it(pipeline_tag, usage, family.pipeline if family else True)}

## Recipe
```yaml
{recipe_yaml}```

<details><summary>run.json</summary>

```json
{json.dumps(info, indent=2, default=str)}
```
</details>
"""
