"""The model card (README.md in the run directory): what was trained, on what, how, and how well."""

from __future__ import annotations

import json


def model_card(info: dict, config_yaml: str, metrics: dict) -> str:
    test = metrics.get("test", {})
    scalars = {k: v for k, v in test.items() if isinstance(v, (int, float))}
    rows = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in scalars.items())
    data = info.get("data", {})
    base = info.get("base_model", {})
    labels = info.get("labels", {})
    pipeline_tag = info.get("pipeline_tag", "text-classification")
    method = info.get("method", {}).get("name")
    trained = f"{info.get('trainable_params', 0):,} of {info.get('total_params', 0):,} parameters trained"
    sizes = f"train {data.get('train')}, validation {data.get('validation')}, test {data.get('test')} examples"
    return f"""---
library_name: transformers
pipeline_tag: {pipeline_tag}
base_model: {base.get("name")}
tags: [tunelab, {info.get("task")}, {method}]
---
# {info.get("task")} model fine-tuned with tunelab

- **Base model:** `{base.get("name")}` ({base.get("location")}, sha256 {base.get("sha256")})
- **Method:** {method} — {trained}
- **Data:** {data.get("source")} — {sizes}
  (fingerprint {data.get("fingerprint")}; {data.get("dropped_duplicates", 0)} duplicate texts dropped before splitting)
- **Labels:** {", ".join(labels.values()) if isinstance(labels, dict) else labels}
- **Best validation:** {info.get("best", {})}
- **Training time:** {info.get("train_seconds", 0):.0f} s; status {info.get("status")}

## Test results
| metric | value |
|---|---|
{rows}

## Use it
```python
from transformers import pipeline
clf = pipeline("{pipeline_tag}", model="model")   # this run's model/ folder, no tunelab needed
```
or `tunelab predict <this run> "some text"`.

## Recipe
```yaml
{config_yaml}```

<details><summary>run.json</summary>

```json
{json.dumps(info, indent=2, default=str)}
```
</details>
"""
