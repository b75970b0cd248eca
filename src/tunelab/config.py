"""The recipe schema: one typed, documented field per knob, grouped the way the training loop is built.

A recipe is YAML with a top-level `task:` and the sections below. Every field has a default, so an empty
recipe is the built-in demo (MiniLM-L6 on movie-review snippets). `tunelab config --defaults` prints this
schema as a commented YAML recipe.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tunelab.errors import TunelabError
from tunelab.registry import TASKS

# The demo recipe ships inside the package: `tunelab train` with no recipe runs exactly this file (recipes/ links to it)
DEMO_RECIPE = Path(__file__).parent / "recipes" / "classify_movie_reviews.yaml"

Task = Literal[tuple(TASKS)]  # the registry's task names


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EdaConfig(Section):
    """EDA's rates (Wei & Zou, 2019): each copy uses one operation, in turn; 0 turns one off."""

    synonym: float = Field(0.1, ge=0, le=1, description="Share of the words replaced by a WordNet synonym.")
    insert: float = Field(0.1, ge=0, le=1, description="Synonyms inserted, as a share of the words.")
    swap: float = Field(0.1, ge=0, le=1, description="Word swaps, as a share of the words.")
    delete: float = Field(0.1, ge=0, le=1, description="Probability that each word is deleted (never every word).")


class ParaphraseConfig(Section):
    """Paraphrases by a causal LM, generated once and cached."""

    model: str = Field("smollm2", description="The generator: built-in smollm2, a local causal LM, or an sft run.")
    prompt: str = Field(
        "Rewrite this sentence in other words, keeping its meaning. Reply with the new sentence only.\n\n{text}",
        description="The instruction; {text} is the training text.",
    )
    temperature: float = Field(0.8, ge=0, description="Sampling temperature (0: greedy, every copy the same).")
    max_new_tokens: int = Field(64, gt=0, description="Longest paraphrase, in tokens.")


class AugmentConfig(Section):
    """Training-set augmentation (the classification family): `copies` new examples per training example."""

    method: Literal["none", "eda", "aeda", "paraphrase"] = Field(
        "none", description="none | eda | aeda (punctuation insertion) | paraphrase (a causal LM rewrites each text)."
    )
    copies: int = Field(4, ge=1, le=64, description="New examples made from each training example.")
    eda: EdaConfig = Field(default_factory=EdaConfig, description="eda: the four operations' rates.")
    aeda: float = Field(1 / 3, gt=0, le=1, description="aeda: the most marks inserted, as a share of the words.")
    paraphrase: ParaphraseConfig = Field(default_factory=ParaphraseConfig, description="paraphrase: the generator.")


class DataConfig(Section):
    """Where the examples come from and how they are turned into model inputs."""

    dataset: Optional[str] = Field(
        None,
        description="Built-in dataset: movie_reviews, sms_spam, trec (classification); wnut16 (ner); chatterbot "
        "(sft); news (lm, mlm). "
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
        description="classification/multilabel/regression/ner: column holding the input text (ner: raw-text JSONL).",
    )
    text_pair_column: Optional[str] = Field(
        None, description="classification/multilabel/regression: optional second text (sentence pairs)."
    )
    label_column: str = Field(
        "label",
        description="classification/multilabel/regression: column holding the label (multilabel: a list, or "
        "`label_separator`-joined).",
    )
    label_separator: str = Field("|", description="multilabel: separator of labels inside one CSV cell.")
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
    few_shot: Optional[int] = Field(
        None,
        gt=1,
        description="classification/multilabel/regression: few-shot protocol: N training examples drawn (stratified, "
        "seeded by split_seed) from train + validation, a validation set of N more from the rest; test as usual.",
    )
    augment: "AugmentConfig" = Field(
        default_factory=lambda: AugmentConfig(),
        description="classification/multilabel/regression: copies of each training example (never of validation or "
        "test), made after the split: {method: eda | aeda | none, copies, eda: {synonym, insert, swap, delete}}.",
    )
    # ---- token classification (ner)
    tokens_column: str = Field("tokens", description="ner, JSONL: column with the list of words of a sentence.")
    tags_column: str = Field(
        "tags", description="ner, JSONL: column with one tag per word (CoNLL files: the last column)."
    )
    entities_column: str = Field(
        "entities",
        description="ner, JSONL with raw `text_column`: list of {start, end, type} character spans (end exclusive).",
    )
    tag_scheme: Literal["IOB2", "IOB1", "BIOES"] = Field(
        "IOB2", description="ner: the scheme of the input tags; converted to IOB2 internally."
    )
    strict_tags: bool = Field(
        False,
        description="ner: reject an I- tag that does not continue an entity (default: repair it to B- and count it).",
    )
    label_all_subtokens: bool = Field(
        False,
        description="ner: train on every sub-token of a word (default: the first only; evaluation always uses the "
        "first).",
    )
    stride: int = Field(
        32,
        ge=0,
        description="ner: tokens shared by consecutive windows of a sentence longer than max_length (at most half a "
        "window).",
    )
    # ---- generative tasks (sft, lm, mlm)
    format: Literal["auto", "messages", "prompt_response", "alpaca"] = Field(
        "auto",
        description="sft: columns of the file: messages (OpenAI chat), prompt/response, or Alpaca "
        "instruction/input/output; auto detects them.",
    )
    train_on: Literal["assistant", "all"] = Field(
        "assistant",
        description="sft: which tokens the loss trains on: the assistant's replies only, or the whole rendered chat.",
    )
    packing: bool = Field(
        False,
        description="sft/lm: several samples per row (positions restart, no attention across samples). True increases "
        "speed (no padding).",
    )
    overlong: Literal["truncate", "drop", "error"] = Field(
        "truncate",
        description="sft: a conversation longer than max_length is cut (counted in the report), dropped (counted) or "
        "an error. lm/mlm cut documents into max_length pieces instead.",
    )
    text_field: str = Field(
        "text",
        description="lm/mlm: the field holding the text in .jsonl/.csv/.parquet files (.txt files are read whole).",
    )
    mlm_probability: float = Field(
        0.15,
        gt=0,
        lt=1,
        description="mlm: share of tokens masked (80% [MASK], 10% random, 10% kept), drawn once with train.seed.",
    )


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


class MethodConfig(Section):
    """What is trained: `full` (all weights), `lora` (low-rank adapters via PEFT, plus the task head) or `frozen`."""

    name: Literal["full", "lora", "frozen"] = Field("full", description="full | lora | frozen")
    r: int = Field(8, gt=0, description="lora: adapter rank.")
    alpha: int = Field(16, gt=0, description="lora: scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="lora: dropout on the adapter input.")
    target_modules: Optional[list[str]] = Field(
        None, description="lora: module names to adapt; default: the architecture's attention (and MLP) projections."
    )
    dora: bool = Field(False, description="lora: weight-decomposed adapters (DoRA).")
    unfreeze_top_layers: int = Field(
        0, ge=0, description="frozen: also train the top k transformer layers (0 = head only)."
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
    batch_size: int = Field(32, gt=0, description="Examples per optimizer step (across all processes).")
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
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto = bf16 autocast where the CPU/GPU has fast bf16, else fp32."
    )
    class_weights: Union[Literal["none", "balanced"], list[float]] = Field(
        "none", description="classification: weight the loss per class (balanced = inverse frequency)."
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
        description="classification/multilabel/regression: K-fold cross-validation over train + validation (the test "
        "split stays out): K runs under RUN/folds/, out-of-fold predictions in oof.jsonl, cv.json. Null: one run.",
    )
    max_tokens: Optional[int] = Field(
        None,
        gt=0,
        description="sft/lm/mlm: token budget: stop after about this many training tokens (row tokens, padding "
        "included); lm/mlm also stop reading training text there.",
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
    threshold: float = Field(0.5, gt=0, lt=1, description="multilabel: probability above which a label is predicted.")
    calibrate: bool = Field(
        True,
        description="classification (single-label): fit a temperature on the validation split after training and "
        "fold it into the saved model, so its probabilities are calibrated (the argmax is unchanged).",
    )
    batch_size: int = Field(128, gt=0, description="Examples per evaluation forward pass.")
    compare_base: bool = Field(
        True, description="sft/lm/mlm: also evaluate the base model on the test split, for a before/after comparison."
    )
    num_generate: int = Field(
        64,
        ge=0,
        description="sft: held-out pairs answered by generation after training (exact match, contains-answer, sample "
        "table); 0: none.",
    )
    max_new_tokens: int = Field(
        48, gt=0, description="sft: generation length bound for the evaluation (longer = slower)."
    )
    generate_batch_size: int = Field(16, gt=0, description="sft: prompts generated together (left-padded, KV cache).")


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


class Config(Section):
    """A tunelab recipe."""

    task: Task = Field("classification", description=" | ".join(TASKS))
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    search: Optional[SearchConfig] = Field(None, description="`tunelab tune` only (see SearchConfig).")

    @model_validator(mode="after")
    def _task_defaults(self) -> "Config":
        """A recipe that names no dataset or model gets the task's own built-ins."""
        family = TASKS[self.task]
        if self.data.dataset is None:
            self.data.dataset = family.dataset
        if self.model.name is None:
            self.model.name = family.model
        return self

    def to_yaml(self, relevant_only: bool = False) -> str:
        """The recipe as YAML; relevant_only: only the fields of this task and method (a field is scoped by its
        description's prefix, e.g. "ner:", "sft/lm:", "lora:"), as `tunelab config RECIPE` and the card show it."""
        return yaml.safe_dump(self.dump(relevant_only), sort_keys=False)

    def dump(self, relevant_only: bool = False) -> dict:
        """The recipe as plain data (what to_yaml writes)."""
        raw = self.model_dump(mode="json")
        if self.search is None:
            raw.pop("search")  # a recipe without a search block: no `search: null` in config.yaml
        if relevant_only:
            for name in type(self).model_fields:
                section = getattr(self, name)
                if isinstance(section, BaseModel):
                    for key, f in type(section).model_fields.items():
                        if not _applies(f.description or "", self.task, self.method.name):
                            raw[name].pop(key)
        return raw


METHODS = get_args(MethodConfig.model_fields["name"].annotation)  # full, lora, frozen


def scope_of(description: str) -> tuple[str, ...]:
    """The tasks and methods a field applies to, from its description's prefix ("ner:", "lora:", "sft/lm:",
    "ner, JSONL:"); () for a field of every task and method."""
    scope = re.match(r"([a-z]+(?:/[a-z]+)*)[:,]", description)
    names = tuple(scope.group(1).split("/")) if scope else ()
    return names if names and all(n in TASKS or n in METHODS for n in names) else ()


def _applies(description: str, task: str, method: str) -> bool:
    """Whether a field applies to this task and method (see scope_of)."""
    names = scope_of(description)
    return not names or task in names or method in names


# ---------------------------------------------------------------- loading and overriding


def load_config(recipe: Union[str, Path, dict, Config, None] = None, overrides: Optional[dict] = None) -> Config:
    """Recipe (YAML path, dict or Config) + dotted overrides (`{"optim.lr": 1e-4}`) -> a validated Config."""
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
    return validate(raw, source)


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


def validate(raw: dict, source: str = "the recipe") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise TunelabError(_explain(e, source)) from None


def parse_set(items: list[str]) -> dict:
    """`--set optim.lr=1e-4 --set method.target_modules=[q_proj,v_proj]` -> {"optim.lr": 0.0001, ...}

    Values are parsed as YAML."""
    out = {}
    for item in items:
        if "=" not in item:
            raise TunelabError(f"--set {item!r}: expected key=value, e.g. --set optim.lr=1e-4.")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def defaults_yaml() -> str:
    """The default recipe with every field's documentation as a comment."""
    lines = ["# tunelab recipe: every field with its default. Run with: tunelab train recipe.yaml", ""]
    cfg = Config()
    lines.append(f"task: {cfg.task}  # {Config.model_fields['task'].description}")
    for name, field in Config.model_fields.items():
        if name == "task":
            continue
        section = getattr(cfg, name)
        comment = ""
        if section is None:  # search: absent by default; shown commented out, with its defaults
            section, comment = SearchConfig(), "# "
        lines.append(f"{comment}{name}:  # {type(section).__doc__.strip()}")
        for fname, f in type(section).model_fields.items():
            value = yaml.safe_dump(section.model_dump(mode="json")[fname], default_flow_style=True, width=10**6).strip()
            value = value.removesuffix("...").strip()
            lines.append(f"{comment}  {fname}: {value}  # {f.description}")
    return "\n".join(lines) + "\n"


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


def _known_keys(loc: tuple) -> list[str]:
    model: Any = Config
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields)


def _explain(e: ValidationError, source: str) -> str:
    problems = []
    for err in e.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            known = _known_keys(loc)
            guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" Did you mean '{guess[0]}'?" if guess else f" Known keys here: {', '.join(known)}."
            problems.append(f"unknown key '{key}'.{hint}")
        else:
            problems.append(f"'{key}': {err['msg']} (got {err.get('input')!r}).")
    return f"{source}: " + " ".join(problems) + " See `tunelab config --defaults` for every field and its meaning."
