"""The search space: the recipe's `search.space` checked against the recipe schema, and sampled by an Optuna trial.

    space:
      optim.lr: {float: [1.0e-5, 3.0e-4], log: true}
      method.r: {int: [4, 32]}                 # also {int: [4, 32], step: 4}
      train.batch_size: {choice: [16, 32]}

Every problem is found before the first trial, each named with the recipe's file and line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args, get_origin

from pydantic import BaseModel

from tunelab.config import Config, Scope, families, scope_of, sections_for, validate
from tunelab.errors import TunelabError
from tunelab.registry import TASKS, load_object

KINDS = ("float", "int", "choice")


@dataclass(frozen=True)
class Dimension:
    field: str  # dotted recipe field: "optim.lr"
    kind: str  # float | int | choice
    low: Any = None
    high: Any = None
    log: bool = False
    step: Optional[float] = None
    choices: tuple = ()
    scope: tuple[str, ...] = ()  # the methods it applies to ("lora",), or () for every method

    def suggest(self, trial):
        if self.kind == "float":
            return trial.suggest_float(self.field, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.field, self.low, self.high, log=self.log, step=int(self.step or 1))
        return trial.suggest_categorical(self.field, list(self.choices))


@dataclass(frozen=True)
class Space:
    dimensions: tuple[Dimension, ...]

    @property
    def fields(self) -> list[str]:
        return [d.field for d in self.dimensions]

    def sample(self, trial, method: str) -> dict:
        """{field: value} for one trial. `method.name` is drawn first; fields of the other methods are then not
        drawn (a LoRA rank means nothing to a full fine-tune)."""
        params = {}
        for d in self.dimensions:  # method.name sorts first (see parse_space)
            if d.scope and params.get("method.name", method) not in d.scope:
                continue
            params[d.field] = d.suggest(trial)
        return params


def parse_space(cfg: Config, source: str = "the recipe") -> Space:
    """The recipe's search.space as dimensions, every one checked: the field exists and applies to the task, the
    distribution is well-formed and fits the field's type, and every value it can take passes the schema."""
    search = cfg.search
    if search is None or not search.space:
        raise TunelabError(
            f"{source}: no search space. Add a search: block with a space of recipe fields, e.g.\n"
            "search:\n  space:\n    optim.lr: {float: [1.0e-5, 3.0e-4], log: true}"
        )
    base = cfg.dump()
    base.pop("search", None)
    methods = {cfg.method.name}
    if "method.name" in search.space:
        spec = search.space["method.name"]
        methods = set(spec.get("choice", [])) if isinstance(spec, dict) else methods
    dims = []
    for name, spec in search.space.items():
        where = _where(source, name)
        field, (task_scope, method_scope) = _field(name, cfg.task, where)
        dim = _dimension(name, spec, field.annotation, where)
        if task_scope and cfg.task not in task_scope:
            raise TunelabError(
                f"{where}: {name} applies to {', '.join(task_scope)} only, and this recipe's task is {cfg.task}. "
                "Remove it from search.space."
            )
        if method_scope and not methods & set(method_scope):
            raise TunelabError(
                f"{where}: {name} applies to method {', '.join(method_scope)} only, and this recipe trains "
                f"{', '.join(sorted(methods))}. Remove it, or set method.name (or search it) to {method_scope[0]}."
            )
        for value in _extremes(dim):
            _check_value(base, name, value, where)
        dims.append(replace(dim, scope=method_scope))
    dims.sort(key=lambda d: d.field != "method.name")  # method.name first: it decides which fields are drawn
    return Space(tuple(dims))


def check_metric(cfg: Config, source: str = "the recipe") -> tuple[str, str]:
    """(metric, "maximize" | "minimize") of the search: search.metric (auto: eval.metric, auto: the task's), checked
    against what the task computes; an explicit direction must agree with the metric's own."""
    family = TASKS[cfg.task]
    metric = cfg.search.metric if cfg.search.metric != "auto" else cfg.eval.metric
    metric = family.metric if metric == "auto" else metric
    known = load_object(family.metrics).higher_is_better
    if metric not in known:
        raise TunelabError(
            f"{_where(source, 'metric')}: search metric '{metric}' is not computed for task '{cfg.task}'. Choose one "
            f"of: {', '.join(known)}."
        )
    own = "maximize" if known[metric] else "minimize"
    direction = cfg.search.direction
    if direction != "auto" and direction != own:
        raise TunelabError(
            f"{_where(source, 'direction')}: search direction '{direction}' contradicts metric '{metric}', which is "
            f"better when {'higher' if known[metric] else 'lower'}. Use direction: {own} (or auto)."
        )
    return metric, own


# ---------------------------------------------------------------- checking one entry


def _field(name: str, task: str, where: str):
    """The FieldInfo of a dotted recipe field and its scope (a field of another task family: scoped to that family's
    tasks, which the caller then refuses), or an error naming the known fields."""
    import difflib

    parts = name.split(".")
    sections = {k: s for k, s in sections_for(task).items() if k != "search"}
    if len(parts) != 2 or parts[0] not in sections:
        raise TunelabError(
            f"{where}: '{name}' is not a recipe field. A search field is section.field, with section one of "
            f"{', '.join(sections)} (e.g. optim.lr)."
        )
    fields = sections[parts[0]].model_fields
    if parts[1] in fields:
        return fields[parts[1]], scope_of(fields[parts[1]])
    for tasks, other in families():  # a field of another task family
        if parts[1] in getattr(other.get(parts[0]), "model_fields", {}):
            f = other[parts[0]].model_fields[parts[1]]
            return f, Scope(scope_of(f).tasks or tasks, scope_of(f).methods)
    guess = difflib.get_close_matches(parts[1], list(fields), n=1)
    hint = f"Did you mean '{parts[0]}.{guess[0]}'?" if guess else f"Fields of {parts[0]}: {', '.join(fields)}."
    raise TunelabError(f"{where}: unknown field '{name}'. {hint}")


def _dimension(name: str, spec: Any, annotation, where: str) -> Dimension:
    form = "a distribution: {float: [lo, hi], log: true}, {int: [lo, hi]} or {choice: [a, b, ...]}"
    if not isinstance(spec, dict):
        raise TunelabError(f"{where}: {name}: {spec!r} is not {form}.")
    kinds = [k for k in spec if k in KINDS]
    extra = [k for k in spec if k not in (*KINDS, "log", "step")]
    if len(kinds) != 1 or extra:
        bad = f"unknown key(s) {', '.join(map(str, extra))}" if extra else f"{len(kinds)} of float/int/choice"
        raise TunelabError(f"{where}: {name}: {bad}; expected {form}.")
    kind = kinds[0]
    types = _types(annotation)
    if kind == "choice":
        choices = spec["choice"]
        if not isinstance(choices, list) or not choices or "log" in spec or "step" in spec:
            raise TunelabError(f"{where}: {name}: choice takes a non-empty list of values, e.g. {{choice: [16, 32]}}.")
        if any(isinstance(c, (dict, list)) for c in choices):
            raise TunelabError(f"{where}: {name}: choice values must be plain numbers, strings, booleans or null.")
        return Dimension(name, "choice", choices=tuple(choices))
    bounds, log, step = spec[kind], spec.get("log", False), spec.get("step")
    numbers = isinstance(bounds, list) and len(bounds) == 2 and all(_is_number(b) for b in bounds)
    if not numbers or bounds[0] >= bounds[1]:
        raise TunelabError(f"{where}: {name}: {kind} takes [low, high] with low < high (got {bounds!r}).")
    if not isinstance(log, bool) or (log and bounds[0] <= 0) or (log and step is not None):
        raise TunelabError(f"{where}: {name}: log: true needs low > 0 and no step (log is true or false).")
    if step is not None and (not _is_number(step) or step <= 0):
        raise TunelabError(f"{where}: {name}: step must be a positive number (got {step!r}).")
    field_kind = "int" if int in types and float not in types else "float" if float in types else None
    if field_kind is None or (kind == "float" and field_kind == "int"):
        takes = "int or choice of ints" if field_kind == "int" else "choice only"
        raise TunelabError(
            f"{where}: {name} is a {_type_name(annotation)} field: it takes {takes}, not {kind} "
            f"({'e.g. {int: [4, 32]}' if field_kind == 'int' else 'e.g. {choice: [a, b]}'})."
        )
    if kind == "int" and not all(isinstance(b, int) for b in bounds) or (kind == "int" and not _int_step(step)):
        raise TunelabError(f"{where}: {name}: int takes whole-number bounds and step (got {bounds!r}).")
    return Dimension(name, kind, low=bounds[0], high=bounds[1], log=log, step=step)


def _extremes(d: Dimension) -> list:
    return list(d.choices) if d.kind == "choice" else [d.low, d.high]


def _check_value(base: dict, name: str, value: Any, where: str) -> None:
    """The recipe validates with the field at `value` (bounds of the field, literal names, types)."""
    section, key = name.split(".")
    raw = {**base, section: {**base.get(section, {}), key: value}}
    try:
        cfg = validate(raw, "x")
    except TunelabError as e:
        reason = str(e).split(": ", 1)[-1].split(" See `tunelab config")[0]
        raise TunelabError(f"{where}: {name} = {value!r} is not a valid value: {reason}") from None
    got = getattr(getattr(cfg, section), key)
    if isinstance(value, float) and isinstance(got, int) and not isinstance(got, bool):
        raise TunelabError(f"{where}: {name} is an integer field: {value!r} is not a whole number.")


def _types(annotation) -> set:
    args = get_args(annotation) if get_origin(annotation) is Union else (annotation,)
    out = set()
    for a in args:
        if a is type(None):
            continue
        if get_origin(a) is Literal or a is bool:
            out.add("other")
        elif a in (int, float):
            out.add(a)
        else:
            out.add("other")
    return out


def _type_name(annotation) -> str:
    if get_origin(annotation) is Literal:
        return "choice (" + " | ".join(map(str, get_args(annotation))) + ")"
    if isinstance(annotation, type) and not issubclass(annotation, BaseModel):
        return annotation.__name__
    return re.sub(r"typing\.", "", str(annotation))


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _int_step(step) -> bool:
    return step is None or (isinstance(step, int) and not isinstance(step, bool))


def _where(source: str, key: str) -> str:
    """`recipe.yaml, line 14` for the line that names `key` under search:, or just the source."""
    path = Path(source)
    if not path.is_file():
        return f"{source}: search"
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"search\s*:", line)), None)
    if start is None:
        return f"{source}: search"
    pattern = re.compile(r"\s+['\"]?" + re.escape(key) + r"['\"]?\s*:")
    for i in range(start + 1, len(lines)):
        if lines[i] and not lines[i][0].isspace() and not lines[i].startswith("#"):
            break  # the next top-level section
        if pattern.match(lines[i]):
            return f"{source}, line {i + 1}: search"
    return f"{source}, line {start + 1}: search"
