"""Questions asked of the run index: which runs match the filters, which run a name means, how two runs differ.

select(rows, task="classification", where=["test.accuracy>0.8"])
find("sft-20261203-154102")            a path, a folder name, or a unique prefix of one
compare([run_a, run_b])                 their metrics side by side and the recipe fields that differ
headline(row)                          the test metric a runs table shows: ("accuracy", 0.91), or None
"""

from __future__ import annotations

import operator
import re
from pathlib import Path
from typing import Optional

import yaml

from tunelab.errors import TunelabError
from tunelab.registry import TASKS
from tunelab.runs import index

OPS = {">=": operator.ge, "<=": operator.le, "!=": operator.ne, "==": operator.eq, "=": operator.eq, ">": operator.gt,
       "<": operator.lt}  # fmt: skip
_WHERE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|!=|==|=|>|<)\s*(.+?)\s*$")
HEADLINE = ("accuracy", "f1", "f1_samples", "mse", "perplexity")  # a task this version does not know: the first it has
HIDDEN_KINDS = ("trial",)  # a study's trials and a cross-validation's folds: shown with --all or --kind trial


def parse_where(expr: str) -> tuple[str, str, object]:
    m = _WHERE.match(expr)
    if not m:
        raise TunelabError(f"--where {expr!r}: write FIELD OP VALUE, e.g. --where \"test.accuracy>0.8\" or --where "
                           "\"status==completed\" (OP one of >=, <=, ==, !=, >, <).")  # fmt: skip
    field, op, raw = m.groups()
    try:
        value: object = float(raw)
    except ValueError:
        value = raw.strip("'\"")
    return field, op, value


def field(row: dict, dotted: str):
    """A run's value for a dotted field: metrics.json first (test.accuracy, validation.f1_macro, diagnosis.verdict),
    then run.json (task, status, best.value, data.train), the index's own columns, then the recipe (optim.lr)."""
    for source in (row.get("metrics") or {}, row.get("info") or {}, row):
        node = source
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                node = None
                break
            node = node[part]
        if node is not None:
            return node
    return recipe_fields(Path(row["path"])).get(dotted)


def select(rows: list[dict], task=None, status=None, kind=None, since: Optional[str] = None, where=(),
           everything: bool = False) -> list[dict]:  # fmt: skip
    tests = [parse_where(w) for w in where]
    out = []
    for r in rows:
        if task and r["task"] != task or status and r["status"] != status or kind and r["kind"] != kind:
            continue
        if not kind and not everything and r["kind"] in HIDDEN_KINDS:
            continue
        if since and (r["created"] or "") < since:
            continue
        ok = True
        for name, op, value in tests:
            have = field(r, name)
            try:
                ok = have is not None and OPS[op](type(value)(have) if isinstance(value, float) else str(have), value)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                break
        if ok:
            out.append(r)
    return out


def headline(row: dict) -> Optional[tuple[str, float]]:
    """The test metric the runs table (`tunelab runs list`, the dashboard) shows for a run, or None: its family's
    metric (the registry's, e.g. f1 for ner: entities, not words), else the first of HEADLINE its test has."""
    test = (row.get("metrics") or {}).get("test") or {}
    family = TASKS.get(row.get("task"))
    candidates = ((family.metric,) if family else ()) + HEADLINE
    key = next((k for k in candidates if isinstance(test.get(k), (int, float))), None)
    return (key, test[key]) if key else None


def find(name: str, root: Optional[Path] = None) -> dict:
    """The indexed run a path, a folder name or a unique prefix of one names (a run directory that is not indexed
    yet is read from its run.json)."""
    rows = index.rows(root)
    path = Path(name)
    if (path / "run.json").exists():
        resolved = str(path.resolve())
        return next((r for r in rows if r["path"] == resolved), None) or index.from_disk(path)
    matches = [r for r in rows if r["name"] == name] or [r for r in rows if r["name"].startswith(name)]
    if len(matches) == 1:
        return matches[0]
    where = root or index.runs_dir()
    if not matches:
        raise TunelabError(f"{name}: no such run in the index of {where} (nor a run directory). `tunelab runs "
                           "list` shows the runs; `tunelab runs sync` indexes runs made before the index.")  # fmt: skip
    raise TunelabError(f"{name}: {len(matches)} runs match ({', '.join(r['name'] for r in matches[:5])}, ...): give "
                       "more of the name, or the path.")  # fmt: skip


def recipe_fields(path: Path) -> dict:
    """config.yaml flattened to dotted keys."""
    p = Path(path) / "config.yaml"
    raw = yaml.safe_load(p.read_text(encoding="utf-8")) if p.exists() else {}
    flat: dict = {}

    def walk(node, prefix):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            flat[prefix] = node

    walk(raw or {}, "")
    return flat


def compare(runs: list[dict]) -> dict:
    """{"runs": names, "metrics": {section.metric: [value per run]}, "recipe": {field: [value per run]}} — the recipe
    fields only where the runs differ."""
    metrics: dict = {}
    for i, r in enumerate(runs):
        for section in ("validation", "test"):
            for k, v in ((r.get("metrics") or {}).get(section) or {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    metrics.setdefault(f"{section}.{k}", [None] * len(runs))[i] = v
    recipes = [recipe_fields(Path(r["path"])) for r in runs]
    keys = sorted(set().union(*recipes))
    differ = {k: [rec.get(k) for rec in recipes] for k in keys if len({repr(rec.get(k)) for rec in recipes}) > 1}
    differ.pop("train.output_dir", None)  # every run has its own
    return {"runs": [r["name"] for r in runs], "paths": [r["path"] for r in runs], "metrics": metrics,
            "recipe": differ}  # fmt: skip
