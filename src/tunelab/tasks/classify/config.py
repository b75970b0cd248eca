"""The recipe fields of the classification family (classification, multilabel, regression): its `data` and `eval`
sections, subclasses of the shared ones in tunelab/config.py. The registry names SECTIONS; config imports this module
only when it validates a recipe of the family (no torch here: `tunelab --help` stays light).

And the family's one default chosen from the data (issue 35): `sized_batch` picks train.batch_size from the number of
training examples, and `choose_from_data` applies it where the recipe did not set the field; the story records the
choice in run.json ("chosen") and the report prints it. It lives here, not in training/, because it was measured on
sequence classification only (benchmarks/small_data.py); the generative families have batch defaults of their own.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from tunelab.config import CLASSIFIERS, DataConfig, EvalConfig, Section, scoped

FAMILY = scoped(tasks=CLASSIFIERS)

# Below this many training examples the batch is halved. At 32 a set of 1,533 texts gets 48 updates per epoch; the
# Trainer tutorial's batch 16 gets twice as many and was 1.0-1.2 points more accurate after one epoch (issue 35),
# while from ~6,400 examples up 32 was level or ahead and faster (throughput is why 32 stays above it).
SMALL_SET, SMALL_BATCH, BATCH = 5_000, 16, 32


def sized_batch(n_train: int) -> tuple[int, str]:
    """(train.batch_size, why) for a run on `n_train` training examples (a pure function; pinned in the tests)."""
    steps = lambda batch: -(-n_train // batch)  # noqa: E731  (optimizer steps per epoch, the last batch included)
    if n_train < SMALL_SET:
        return SMALL_BATCH, (
            f"{n_train:,} training examples (< {SMALL_SET:,}): batch {SMALL_BATCH} makes {steps(SMALL_BATCH):,} "
            f"optimizer steps per epoch where {BATCH} makes {steps(BATCH):,}; on a small set more updates per epoch "
            "matter more than throughput"
        )
    return BATCH, (
        f"{n_train:,} training examples (>= {SMALL_SET:,}): batch {BATCH} for throughput, {steps(BATCH):,} optimizer "
        "steps per epoch are enough"
    )


def choose_from_data(cfg, n_train: int) -> dict:
    """Set train.batch_size from the data size unless the recipe set it (an explicit value always wins), or unless
    the chosen size is not a multiple of an explicit train.micro_batch_size; returns what was chosen, as run.json
    records it: {"train.batch_size": {"value": 16, "because": "..."}} or {}."""
    if "batch_size" in cfg.train.model_fields_set:
        return {}
    value, because = sized_batch(n_train)
    micro = cfg.train.micro_batch_size
    if micro and value % micro:
        return {}
    # set without validate_assignment's bookkeeping: the field stays "unset", so a second call chooses afresh
    object.__setattr__(cfg.train, "batch_size", value)
    return {"train.batch_size": {"value": value, "because": because}}


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


class ClassifyData(DataConfig):
    """Where the examples come from and how they are turned into model inputs."""

    text_pair_column: Optional[str] = Field(
        None, description="Optional second text column (sentence pairs).", json_schema_extra=FAMILY
    )
    label_separator: str = Field(
        "|",
        description="Separator of labels inside one CSV cell.",
        json_schema_extra=scoped(tasks=("multilabel",)),
    )
    few_shot: Optional[int] = Field(
        None,
        gt=1,
        description="Few-shot protocol: N training examples drawn (stratified, seeded by split_seed) from train + "
        "validation, a validation set of N more from the rest; test as usual.",
        json_schema_extra=FAMILY,
    )
    augment: AugmentConfig = Field(
        default_factory=AugmentConfig,
        description="Copies of each training example (never of validation or test), made after the split: "
        "{method: eda | aeda | none, copies, eda: {synonym, insert, swap, delete}}.",
        json_schema_extra=FAMILY,
    )


class ClassifyEval(EvalConfig):
    """Validation, early stopping and the final report."""

    threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Probability above which a label is predicted.",
        json_schema_extra=scoped(tasks=("multilabel",)),
    )
    calibrate: bool = Field(
        True,
        description="Single-label: fit a temperature on the validation split after training and fold it into the "
        "saved model, so its probabilities are calibrated (the argmax is unchanged).",
        json_schema_extra=scoped(tasks=("classification",)),
    )


SECTIONS = {"data": ClassifyData, "eval": ClassifyEval}
