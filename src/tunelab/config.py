"""The recipe schema: one typed, documented field per knob, grouped the way the training loop is built.

A recipe is YAML with a top-level `task:` and the sections below. Every field has a default, so an empty
recipe is the built-in demo (MiniLM-L6 on movie-review snippets). `tunelab config --defaults` prints this
schema as a commented YAML recipe.

The fields every task shares live here. A task family declares its own `data` and `eval` fields (subclasses of the
sections here), and may add top-level sections, in its folder (tasks/<family>/config.py: SECTIONS); the registry
names that module and it is imported only when a recipe of the family is validated (`family_sections`), so this
module imports no family. Which tasks or methods a field applies to is metadata on the field (`scoped`), read by
`config --defaults`, the model card, the run's config.yaml and the search space.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Optional, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from tunelab.errors import RecipeWarning, TunelabError
from tunelab.registry import TASKS, load_object

# The demo recipe ships inside the package: `tunelab train` with no recipe runs exactly this file (recipes/ links to it)
DEMO_RECIPE = Path(__file__).parent / "recipes" / "classify_movie_reviews.yaml"

Task = Literal[tuple(TASKS)]  # the registry's task names
METHODS = ("full", "lora", "frozen")


# ---------------------------------------------------------------- scopes: which tasks and methods a field applies to


class Scope(NamedTuple):
    tasks: tuple[str, ...] = ()  # () = every task
    methods: tuple[str, ...] = ()  # () = every method

    def applies(self, task: str, method: str) -> bool:
        return (not self.tasks or task in self.tasks) and (not self.methods or method in self.methods)

    @property
    def label(self) -> str:
        """The scope as text: ner, lora, classification/multilabel/regression; "" for every task and method."""
        return "; ".join("/".join(names) for names in (self.tasks, self.methods) if names)


def scoped(tasks: tuple[str, ...] = (), methods: tuple[str, ...] = ()) -> dict:
    """A field's json_schema_extra naming the tasks and methods it applies to:
    `Field(8, description="Adapter rank.", json_schema_extra=scoped(methods=("lora",)))`."""
    unknown = [t for t in tasks if t not in TASKS] + [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"scoped(): unknown task or method {', '.join(unknown)}")
    return {k: list(v) for k, v in (("tasks", tasks), ("methods", methods)) if v}


def scope_of(field: FieldInfo) -> Scope:
    """The tasks and methods a field applies to, from its metadata (`scoped`); Scope() for every task and method."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return Scope(tuple(extra.get("tasks", ())), tuple(extra.get("methods", ())))


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


CLASSIFIERS = ("classification", "multilabel", "regression")
GENERATIVE = ("sft", "lm", "mlm")


class DataConfig(Section):
    """Where the examples come from and how they are turned into model inputs."""

    dataset: Optional[str] = Field(
        None,
        description="Built-in dataset: movie_reviews, sms_spam, trec (classification); wnut16 (ner); chatterbot "
        "(sft); news (lm, mlm); aclsum (summarization); bible_fr_en (translation); chatterbot_pairs (preference). "
        "Ignored when `train` is given. Default (null): the task's own built-in.",
    )
    train: Optional[Path] = Field(
        None,
        description="Training file: .csv, .tsv, .jsonl, .json or .parquet (ner: CoNLL .conll/.txt/.tsv, or .jsonl).",
    )
    validation: Optional[Path] = Field(None, description="Validation file; default: a split of `train`.")
    test: Optional[Path] = Field(None, description="Test file; default: a split of `train`.")
    text_column: str = Field(
        "text",
        description="Column holding the input text (ner: the raw text of a JSONL file with entity spans).",
        json_schema_extra=scoped(tasks=(*CLASSIFIERS, "ner")),
    )
    label_column: str = Field(
        "label",
        description="Column holding the label (multilabel: a list, or `label_separator`-joined).",
        json_schema_extra=scoped(tasks=CLASSIFIERS),
    )
    max_length: int = Field(
        128,
        gt=1,
        description="Tokens per example; longer inputs are truncated (counted in the report). ner: longer sentences "
        "are split into overlapping windows instead.",
    )
    validation_fraction: float = Field(
        0.1, ge=0, lt=1, description="Share of `train` held out for validation when no file is given."
    )
    test_fraction: float = Field(
        0.1, ge=0, lt=1, description="Share of `train` held out for test when no file is given."
    )
    split_seed: int = Field(
        42,
        description="Seeds the train/validation/test split; apart from train.seed, so runs that differ only in their "
        "training seed are validated and tested on the same examples.",
    )
    dedupe: bool = Field(
        True, description="Drop exact-duplicate texts before splitting (duplicates across splits inflate scores)."
    )
    limit: Optional[int] = Field(None, gt=0, description="Use at most this many training examples (quick experiments).")


class ModelConfig(Section):
    """The pretrained model to start from."""

    name: Optional[str] = Field(
        None,
        description="Built-in name (minilm, smollm2), a local Hugging Face directory, a .gguf file, or a hub id. "
        "Default (null): minilm, or smollm2 for sft and lm.",
    )
    gguf_file: Optional[str] = Field(None, description="GGUF file inside `name` when it is a directory or hub id.")
    dropout: Optional[float] = Field(None, ge=0, lt=1, description="Override the model's dropout probabilities.")
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward: less memory, ~30% slower."
    )
    revision: Optional[str] = Field(None, description="Hub revision (branch, tag or commit) for hub ids.")


LORA, FROZEN = scoped(methods=("lora",)), scoped(methods=("frozen",))


class MethodConfig(Section):
    """What is trained: `full` (all weights), `lora` (low-rank adapters via PEFT, plus the task head) or `frozen`."""

    name: Literal[METHODS] = Field("full", description="full | lora | frozen")
    r: int = Field(8, gt=0, description="Adapter rank.", json_schema_extra=LORA)
    alpha: int = Field(16, gt=0, description="Scaling numerator (scale = alpha / r).", json_schema_extra=LORA)
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter input.", json_schema_extra=LORA)
    target_modules: Optional[list[str]] = Field(
        None,
        description="Module names to adapt; default: the architecture's attention (and MLP) projections.",
        json_schema_extra=LORA,
    )
    dora: bool = Field(False, description="Weight-decomposed adapters (DoRA).", json_schema_extra=LORA)
    unfreeze_top_layers: int = Field(
        0,
        ge=0,
        description="Also train the top k transformer layers (0 = head only); an encoder-decoder: its top k decoder "
        "blocks.",
        json_schema_extra=FROZEN,
    )


class OptimConfig(Section):
    """AdamW and its learning-rate schedule."""

    lr: float = Field(1e-4, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(0.01, ge=0, description="Decoupled weight decay; never applied to biases and norms.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    scheduler: Literal["linear", "cosine", "constant"] = Field("linear", description="Decay after warm-up.")
    warmup_ratio: float = Field(
        0.06, ge=0, lt=1, description="Share of the steps spent warming up (ignored if warmup_steps is set)."
    )
    warmup_steps: Optional[int] = Field(None, ge=0, description="Warm-up steps; overrides warmup_ratio.")
    max_grad_norm: Optional[float] = Field(1.0, gt=0, description="Clip the global gradient norm (null: no clipping).")


class TrainConfig(Section):
    """The loop: how many steps, how big, how precise, where the run goes."""

    epochs: float = Field(3, gt=0, description="Passes over the training data (ignored if max_steps is set).")
    max_steps: Optional[int] = Field(None, gt=0, description="Stop after this many optimizer steps.")
    batch_size: int = Field(
        32,
        gt=0,
        description="Examples per optimizer step (across all processes). Unset in a classification-family recipe: "
        "chosen from the data, 16 below 5,000 training examples (run.json: chosen).",
    )
    micro_batch_size: Optional[int] = Field(
        None,
        gt=0,
        description="Examples per forward pass; batch_size/micro_batch_size is the gradient accumulation. Default: "
        "batch_size.",
    )
    group_by_length: bool = Field(
        True,
        description="Batch examples of similar length: less padding, same results on average (True increases speed).",
    )
    longest_first: bool = Field(
        False,
        description="The first epoch opens with one extra step on the batch_size longest examples: the step of peak "
        "memory comes first, so running out of memory shows at once (doctor --estimate measures with it).",
    )
    seed: int = Field(
        42, description="Seeds data order, initialisation, dropout and mlm masks (the split has data.split_seed)."
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="auto = bf16 autocast where the CPU/GPU has fast bf16, fp16 with a gradient scaler on a GPU "
        "without it, else fp32. fp16 is refused on the CPU (emulated there: slower than fp32).",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto",
        description="Where to train: auto = a CUDA GPU if there is one, else Apple silicon (mps), else the CPU. An "
        "explicit device that is not there is an error.",
    )
    class_weights: Union[Literal["none", "balanced"], list[float]] = Field(
        "none",
        description="Weight the loss per class (balanced = inverse frequency).",
        json_schema_extra=scoped(tasks=("classification",)),
    )
    output_dir: Optional[Path] = Field(None, description="Run directory; default runs/<task>-<timestamp>.")
    log_every: int = Field(10, gt=0, description="Steps between log lines in metrics.jsonl.")
    report_to: list[Literal["tensorboard"]] = Field(
        default_factory=list, description="Also write the logged records here: [tensorboard] (RUN/tensorboard/)."
    )
    eval_every: Optional[int] = Field(None, gt=0, description="Steps between validations; default: once per epoch.")
    save_every: Optional[int] = Field(None, gt=0, description="Steps between checkpoints; default: at each validation.")
    num_threads: Optional[int] = Field(None, gt=0, description="CPU threads for torch (default: torch's choice).")
    fast_cpu_dropout: bool = Field(
        True,
        description="Dropout masks at a quarter of torch's CPU cost (one 64-bit random draw per four elements; p "
        "rounded to 1/65536). Same expected activations, other random draws than torch's; false: torch's own dropout.",
    )
    compile: bool = Field(
        False,
        description="torch.compile the training forward (inductor, dynamic shapes). Off by default: on a 2-core CPU "
        "compiling takes longer than it saves in a short run (benchmarks/RESULTS.md).",
    )
    folds: Optional[int] = Field(
        None,
        ge=2,
        description="K-fold cross-validation over train + validation (the test split stays out): K runs under "
        "RUN/folds/, out-of-fold predictions in oof.jsonl, cv.json. Null: one run.",
        json_schema_extra=scoped(tasks=CLASSIFIERS),
    )
    max_tokens: Optional[int] = Field(
        None,
        gt=0,
        description="Token budget: stop after about this many training tokens (row tokens, padding included); lm "
        "and mlm also stop reading training text there.",
        json_schema_extra=scoped(tasks=GENERATIVE),
    )


class EvalConfig(Section):
    """Validation, early stopping and the final report."""

    metric: str = Field(
        "auto",
        description="Metric that picks the best checkpoint: auto = the task's own (accuracy, f1_samples, mse, "
        "entity f1, perplexity).",
    )
    mode: Literal["auto", "max", "min"] = Field(
        "auto", description="Whether the metric is better when higher or lower."
    )
    patience: Optional[int] = Field(
        None, gt=0, description="Early stopping: validations without improvement before stopping (null: off)."
    )
    batch_size: int = Field(128, gt=0, description="Examples per evaluation forward pass.")


class RayConfig(Section):
    """distributed.ray: train in a Ray Train TorchTrainer (the [ray] extra): the same loop on each worker, the run
    directory its one output (`tunelab train RECIPE --ray-workers N` sets workers)."""

    workers: int = Field(2, ge=1, description="Training processes (Ray Train workers), each a share of every step.")
    cpus_per_worker: Optional[float] = Field(
        None, gt=0, description="CPUs each worker asks Ray for; null = what fits: the cluster's CPUs / workers."
    )
    gpus_per_worker: float = Field(0, ge=0, description="GPUs each worker asks Ray for (0: train on CPUs, gloo).")
    address: Optional[str] = Field(
        None,
        description="null = a local Ray cluster started for the run; 'auto' or ray://HOST:10001 = an existing cluster "
        "(recipe, data and run directory on storage every node sees).",
    )


class DistributedConfig(Section):
    """How several processes (torchrun, accelerate launch, Ray Train) share the training; one process ignores it."""

    strategy: Literal["auto", "ddp", "fsdp"] = Field(
        "auto",
        description="auto = fsdp where an `accelerate launch` config asks for FSDP, else ddp (every process holds the "
        "whole model; gradients averaged). fsdp = FSDP2: each transformer block's weights, gradients and optimizer "
        "state sharded over the processes (less memory per process, more communication); needs 2+ processes; "
        "its checkpoints are sharded, and resume (--resume) at any number of processes. An explicit value wins over "
        "an accelerate config.",
    )
    timeout_s: float = Field(
        300,
        gt=0,
        description="Seconds a process waits in a collective for the others before it stops with an error naming its "
        "rank (a process that died is usually noticed at once; a hung one after this long). Raise it when one process "
        "is legitimately busy longer (saving a large checkpoint while the others wait).",
    )
    ray: Optional[RayConfig] = Field(
        None, description="Train on Ray (Ray Train TorchTrainer) with these workers; null = torchrun or one process."
    )


class SearchConfig(Section):
    """Hyper-parameter search: `tunelab tune RECIPE` runs it (`tunelab train` trains the base recipe and ignores it)."""

    metric: str = Field("auto", description="Validation metric the search optimises; auto = eval.metric.")
    direction: Literal["auto", "maximize", "minimize"] = Field(
        "auto", description="auto = the metric's own (maximize accuracy, minimize loss)."
    )
    trials: int = Field(20, gt=0, description="Completed + pruned trials the study should reach.")
    timeout: Optional[float] = Field(
        None, gt=0, description="Seconds per invocation: no new trial starts after it (the running one finishes)."
    )
    sampler: Literal["tpe", "random", "gp"] = Field("tpe", description="tpe | random | gp (Gaussian process).")
    seed: int = Field(42, description="Seeds the sampler (worker k of --workers uses seed + k).")
    pruner: Literal["median", "hyperband", "none"] = Field(
        "median", description="Stops a trial at a validation where it is unlikely to win: median | hyperband | none."
    )
    keep: Literal["best", "all"] = Field(
        "best", description="best: only the best trial keeps model/ and checkpoints; all: every trial keeps them."
    )
    space: dict[str, Any] = Field(
        default_factory=dict,
        description="Dotted recipe fields -> distributions: {float: [lo, hi], log: true}, {int: [lo, hi]}, "
        "{choice: [a, b]}.",
    )


SHARED_SECTIONS: dict[str, type[Section]] = {"data": DataConfig, "model": ModelConfig, "method": MethodConfig,
                                             "optim": OptimConfig, "train": TrainConfig, "eval": EvalConfig,
                                             "distributed": DistributedConfig, "search": SearchConfig}  # fmt: skip


# ---------------------------------------------------------------- the families' own sections, found lazily


@functools.cache
def _load_sections(path: str) -> dict[str, type[Section]]:
    return dict(load_object(path))


def family_sections(task: str) -> dict[str, type[Section]]:
    """The sections a task's family declares (its registry entry's `config`, imported now): {"data": NerData, ...},
    subclasses of the shared sections or top-level sections of its own; {} when it declares none."""
    path = TASKS[task].config
    return _load_sections(path) if path else {}


def sections_for(task: str) -> dict[str, type[Section]]:
    """Every section of a recipe of this task by name: the shared ones, the family's in their place, then the
    family's own top-level ones."""
    return {**SHARED_SECTIONS, **family_sections(task)}


def families() -> list[tuple[tuple[str, ...], dict[str, type[Section]]]]:
    """(tasks, sections) of every family that declares sections, in registry order (their modules imported now)."""
    by_path: dict[str, list[str]] = {}
    for task, family in TASKS.items():
        if family.config:
            by_path.setdefault(family.config, []).append(task)
    return [(tuple(tasks), _load_sections(path)) for path, tasks in by_path.items()]


def _owner(section: str, key: Optional[str] = None) -> Optional[str]:
    """The tasks ("ner", "sft/lm/mlm") of the family that declares this top-level section (key None) or this field of
    a section; None when no family does."""
    for tasks, sections in families():
        cls = sections.get(section)
        if key is None and cls is not None and section not in SHARED_SECTIONS:
            return "/".join(tasks)
        if key is not None and cls is not None and key in cls.model_fields:
            return "/".join(scope_of(cls.model_fields[key]).tasks or tasks)
    return None


def _ignored(info: ValidationInfo, key: str, owner: str) -> None:
    """Note a field of another family, dropped: validate() warns about it; other callers drop it silently."""
    if isinstance(info.context, dict) and isinstance(info.context.get("ignored"), list):
        info.context["ignored"].append((key, owner))


class _Pending(NamedTuple):
    """A family's own top-level section, validated as an extra field of Config (so its errors name their place)."""

    section: type
    value: Any


def _family_extra(value: Any) -> Any:
    if isinstance(value, _Pending):
        return value.section.model_validate(value.value)
    raise PydanticCustomError("extra_forbidden", "Extra inputs are not permitted")  # a key no section has


class Config(Section):
    """A tunelab recipe."""

    # the only extra keys taken: the top-level sections the task's family declares (any other is an unknown key)
    model_config = ConfigDict(extra="allow", validate_assignment=True)
    __pydantic_extra__: dict[str, Annotated[Any, PlainValidator(_family_extra)]]

    task: Task = Field("classification", description=" | ".join(TASKS))
    data: SerializeAsAny[DataConfig] = Field(default_factory=DataConfig, validate_default=True)
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: SerializeAsAny[EvalConfig] = Field(default_factory=EvalConfig, validate_default=True)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    search: Optional[SearchConfig] = Field(None, description="`tunelab tune` only (see SearchConfig).")

    @model_validator(mode="before")
    @classmethod
    def _family_top_level(cls, raw: Any, info: ValidationInfo) -> Any:
        """The family's own top-level sections (validated by _family_extra); another family's are dropped."""
        task = raw.get("task", "classification") if isinstance(raw, dict) else None
        if not isinstance(task, str) or task not in TASKS or info.field_name is not None:
            return raw  # the task field reports it; or an assignment (cfg.x = ...), whose sections are validated
        own = {k: s for k, s in family_sections(task).items() if k not in cls.model_fields}
        raw = dict(raw)
        for key in [k for k in raw if k not in cls.model_fields and k not in own]:
            owner = _owner(key)
            if owner is not None:
                raw.pop(key)
                _ignored(info, key, owner)
        for key, section in own.items():
            raw[key] = _Pending(section, raw.get(key) or {})
        return raw

    @field_validator("data", "eval", mode="wrap")
    @classmethod
    def _family_section(cls, value: Any, handler, info: ValidationInfo) -> Any:
        """data and eval as the task family's own classes (NerData, ...); a field of another family is dropped."""
        task, name = info.data.get("task"), info.field_name
        if task is None:
            return SHARED_SECTIONS[name]()  # the task is invalid: its own error says so
        section = family_sections(task).get(name, SHARED_SECTIONS[name])
        if type(value) is section:
            return value
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_unset=True)
        if isinstance(value, dict):
            value = dict(value)
            for key in [k for k in value if k not in section.model_fields]:
                owner = _owner(name, key)
                if owner is not None:
                    value.pop(key)
                    _ignored(info, f"{name}.{key}", owner)
        return section.model_validate(value)

    @model_validator(mode="after")
    def _task_defaults(self) -> "Config":
        """A recipe that names no dataset or model gets the task's own built-ins."""
        family = TASKS[self.task]
        if self.data.dataset is None:
            self.data.dataset = family.dataset
        if self.model.name is None:
            self.model.name = family.model
        if family.defaults:
            self._family_defaults(load_object(family.defaults))
        return self

    def _family_defaults(self, defaults: dict) -> None:
        """The family's defaults ({"section.field": value}, in order) for every field the recipe leaves unset; a
        {method: value} entry applies only when the run's method (by then decided) is one of its keys."""
        for dotted, value in defaults.items():
            section_name, field = dotted.split(".")
            section = getattr(self, section_name)
            if field in section.model_fields_set:
                continue
            if isinstance(value, dict):
                if self.method.name not in value:
                    continue
                value = value[self.method.name]
            setattr(section, field, value)

    def to_yaml(self, relevant_only: bool = False) -> str:
        """The recipe as YAML; relevant_only: only the fields of this task and method (a field's scope is its
        metadata, see `scoped`), as the run's config.yaml, `tunelab config RECIPE` and the card show it."""
        return yaml.safe_dump(self.dump(relevant_only), sort_keys=False)

    def dump(self, relevant_only: bool = False) -> dict:
        """The recipe as plain data (what to_yaml writes): the shared fields and the task family's; relevant_only:
        without the fields of other tasks (of the family) and other methods."""
        raw = self.model_dump(mode="json")
        if self.search is None:
            raw.pop("search")  # a recipe without a search block: no `search: null` in config.yaml
        if relevant_only:
            for name in list(raw):
                section = getattr(self, name)
                if isinstance(section, BaseModel):
                    for key, f in type(section).model_fields.items():
                        if not scope_of(f).applies(self.task, self.method.name):
                            raw[name].pop(key)
        return raw


# ---------------------------------------------------------------- loading and overriding


def load_config(
    recipe: Union[str, Path, dict, Config, None] = None, overrides: Optional[dict] = None, warn: bool = True
) -> Config:
    """Recipe (YAML path, dict or Config) + dotted overrides (`{"optim.lr": 1e-4}`) -> a validated Config.

    A field of another task family is ignored, with a RecipeWarning naming its family (warn=False: silently, as for
    a run's own config.yaml)."""
    source = "the recipe"
    if recipe is None:
        raw: dict = {}
    elif isinstance(recipe, Config):
        raw = recipe.model_dump(mode="json", exclude_unset=True)
    elif isinstance(recipe, dict):
        raw = recipe
    else:
        path = Path(recipe)
        source = str(path)
        if not path.is_file():
            raise TunelabError(
                f"{path}: recipe not found. Pass the path of a YAML recipe (see recipes/), or no recipe for the "
                "defaults."
            )
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = f", line {mark.line + 1}" if mark else ""
            raise TunelabError(
                f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)}). Fix the recipe's syntax and run again."
            ) from None
        except UnicodeDecodeError:
            raise TunelabError(f"{path}: not UTF-8 text. Save the recipe as UTF-8 and run again.") from None
        if not isinstance(raw, dict):
            raise TunelabError(
                f"{path}: a recipe is a YAML mapping (task:, data:, model:, ...), not a {type(raw).__name__}."
            )
    raw = _deep_copy(raw)
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    return validate(raw, source, warn)


def load_run_config(path: Path) -> Config:
    """A finished run's config.yaml, read leniently: a field this version no longer knows (renamed or removed) or no
    longer accepts is left at its default, so old runs keep loading. run.json, not this file, is the contract."""
    raw = (yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}) if Path(path).is_file() else {}
    for _ in range(100):  # each round drops the fields the last validation refused
        try:
            return Config.model_validate(raw)
        except ValidationError as e:
            refused = [tuple(err["loc"]) for err in e.errors()]
        if ("task",) in refused:
            raise TunelabError(f"{path}: task {raw.get('task')!r} is unknown to this version of tunelab.")
        for loc in refused:
            node = raw
            for part in loc[:-1]:
                node = node.get(part, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict):
                node.pop(loc[-1], None)
    raise TunelabError(f"{path}: not a tunelab recipe this version can read.")


def validate(raw: dict, source: str = "the recipe", warn: bool = True) -> Config:
    """The recipe as a Config, or a TunelabError naming every problem; a field of another task family is dropped,
    with a one-line RecipeWarning (warn=False: silently)."""
    ignored: list[tuple[str, str]] = []
    try:
        cfg = Config.model_validate(raw, context={"ignored": ignored})
    except ValidationError as e:
        raise TunelabError(_explain(e, source, raw.get("task") if isinstance(raw, dict) else None)) from None
    for key, owner in ignored if warn else ():
        warnings.warn(f"{source}: {key} is a field of {owner}, not of task {cfg.task}: ignored.", RecipeWarning, 2)
    return cfg


def parse_set(items: list[str]) -> dict:
    """`--set optim.lr=1e-4 --set method.target_modules=[q_proj,v_proj]` -> {"optim.lr": 0.0001, ...}

    Values are parsed as YAML, except text YAML cannot read, or reads as a mapping while it names a {column}, which
    stays text: a prompt template such as `--set "data.prompt=Summarize: {source}"`."""
    out = {}
    for item in items:
        if "=" not in item:
            raise TunelabError(f"--set {item!r}: expected key=value, e.g. --set optim.lr=1e-4.")
        key, value = item.split("=", 1)
        out[key.strip()] = _set_value(value) if value.strip() else None
    return out


def _set_value(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, dict) and re.search(r"\{\w+\}", text):  # "{source}" read as {"source": None}: a template
        return text
    return value


def defaults_yaml() -> str:
    """The default recipe with every field's documentation as a comment, its scope first ("[ner]", "[lora]"). The
    fields of the default task's family are set; the other families' follow their section, commented out."""
    cfg = Config()
    lines = [
        "# tunelab recipe: every field with its default. Run with: tunelab train recipe.yaml",
        "# [tasks] or [methods] before a comment: the field applies to those only. The fields of another task's family",
        "# follow each section, commented out: uncomment them in a recipe of that task.",
        "",
        f"task: {cfg.task}  # {Config.model_fields['task'].description}",
    ]
    others = [(tasks, sections) for tasks, sections in families() if cfg.task not in tasks]
    for name in Config.model_fields:
        if name == "task":
            continue
        section, comment = getattr(cfg, name), ""
        if section is None:  # search: absent by default; shown commented out, with its defaults
            section, comment = SearchConfig(), "# "
        lines.append(f"{comment}{name}:  # {SHARED_SECTIONS[name].__doc__.strip()}")
        lines += _field_lines(section, comment, "  ")
        for tasks, sections in others:
            shown = type(section).model_fields
            own = [k for k in sections.get(name, SHARED_SECTIONS[name]).model_fields if k not in shown]
            if own:
                lines.append(f"  ## the fields of task {' | '.join(tasks)}:")
                lines += _field_lines(sections[name](), "# ", "  ", own)
    for name, section in (cfg.__pydantic_extra__ or {}).items():  # the default family's own top-level sections
        lines.append(f"{name}:  # {type(section).__doc__.strip()}")
        lines += _field_lines(section, "", "  ")
    for tasks, sections in others:
        for name, cls in sections.items():
            if name not in SHARED_SECTIONS:
                lines.append(f"## task {' | '.join(tasks)} only:")
                lines.append(f"# {name}:  # {cls.__doc__.strip()}")
                lines += _field_lines(cls(), "# ", "  ")
    return "\n".join(lines) + "\n"


def _field_lines(section: BaseModel, comment: str, indent: str, names: Optional[list[str]] = None) -> list[str]:
    """`  name: default  # [scope] description` for each field (of `names`) of a section."""
    values = section.model_dump(mode="json")
    out = []
    for fname, f in type(section).model_fields.items():
        if names is not None and fname not in names:
            continue
        value = yaml.safe_dump(values[fname], default_flow_style=True, width=10**6).strip()
        value = value.removesuffix("...").strip()
        if "\n" in value:  # a text with line breaks (the paraphrase prompt): JSON, which YAML reads, on one line
            value = json.dumps(values[fname], ensure_ascii=False)
        label = scope_of(f).label
        doc = f"[{label}] {f.description}" if label else f.description
        out.append(f"{indent}{comment}{fname}: {value}  # {doc}")
    return out


def _deep_copy(raw: dict) -> dict:
    return yaml.safe_load(yaml.safe_dump(raw)) if raw else {}


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise TunelabError(f"--set {key}: {p} is not a section.")
    node[parts[-1]] = value


def _known_keys(loc: tuple, task: Any) -> list[str]:
    """The keys a recipe of this task takes where `loc` points (its last part: the unknown key)."""
    sections = sections_for(task if isinstance(task, str) and task in TASKS else "classification")
    if len(loc) == 1:
        return ["task", *sections]
    model: Any = sections.get(loc[0])
    for part in loc[1:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) and model is not None else None
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields) if model is not None else []


def _explain(e: ValidationError, source: str, task: Any = None) -> str:
    problems = []
    for err in e.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            known = _known_keys(loc, task)
            guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" Did you mean '{guess[0]}'?" if guess else f" Known keys here: {', '.join(known)}."
            problems.append(f"unknown key '{key}'.{hint}")
        else:
            problems.append(f"'{key}': {err['msg']} (got {err.get('input')!r}).")
    return f"{source}: " + " ".join(problems) + " See `tunelab config --defaults` for every field and its meaning."
