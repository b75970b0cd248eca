"""The recipe fields of the preference family (task `preference`): its own top-level `preference:` section (which loss,
its strengths), its `data` and `eval` sections, and DEFAULTS where a recipe sets nothing. The registry names SECTIONS
and DEFAULTS; config imports this module only when it validates a preference recipe (no torch here).

Each loss's default strengths come from its paper (LOSS_DEFAULTS, with the source beside each value); a recipe's own
value wins, and the run's config.yaml records the values used."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from tunelab.config import DataConfig, EvalConfig, Section, scoped

PREFERENCE = scoped(tasks=("preference",))

# Where a recipe (or the command line) sets none of these: LoRA (the reference is then the same model with its adapter
# switched off: no second model in memory), batches of 8 pairs (16 sequences), and learning rates far below sft's:
# a preference loss moves the policy away from its reference fast (the DPO paper fine-tunes fully at 1e-6).
# Dropout off (as TRL's disable_dropout): the reference is computed without it, and a policy with it would differ
# from its reference before its first step. Two pairs (4 sequences) per forward pass, accumulated exactly into the 8
# of a step: what backward keeps is the activations of the sequences in flight (about 1.2 GB per 256-token sequence
# of SmolLM2-135M in fp32), so memory stays at sft's level without recomputing them (gradient checkpointing).
DEFAULTS = {
    "method.name": "lora",
    "method.dropout": 0.0,
    "model.dropout": 0.0,
    "train.batch_size": 8,
    "train.micro_batch_size": 2,
    "eval.batch_size": 16,
    "optim.lr": {"lora": 5e-4, "full": 5e-6},
}

LOSSES = ("dpo", "ipo", "orpo", "simpo")
# the losses that compare the policy with a reference model's log-probabilities (ORPO and SimPO need none)
NEEDS_REFERENCE = {"dpo": True, "ipo": True, "orpo": False, "simpo": False}
# Each loss's strengths where the recipe sets none, from its paper:
LOSS_DEFAULTS: dict[str, dict[str, float]] = {
    "dpo": {"beta": 0.1},  # Rafailov et al. 2023 (DPO), App. B: beta = 0.1 unless noted otherwise
    # Azar et al. 2023 (IPO) name tau but give no value for language models; TRL's default (DPOConfig.beta, the tau
    # of its loss_type="ipo"). With per-token means the target margin 1/(2 tau) = 5 is in nats per token.
    "ipo": {"beta": 0.1},
    # lambda of Hong et al. 2024 (ORPO): the value the authors trained Mistral-ORPO-alpha/beta with (their repository
    # xfactlab/orpo, scripts/run_mistral_orpo_beta.sh: --alpha 0.1), and TRL's ORPOConfig.beta default
    "orpo": {"orpo_weight": 0.1},
    # Meng et al. 2024 (SimPO), hyper-parameter table of the appendix, Llama3-Base setting: beta = 2.0, gamma = 1.0,
    # i.e. gamma/beta = 0.5, the ratio the authors' README (princeton-nlp/SimPO) recommends as the starting point
    "simpo": {"beta": 2.0, "gamma": 1.0},
}


class PreferenceSection(Section):
    """Preference tuning (task preference): the loss and its strengths. Unset strengths take the loss's paper value."""

    loss: Literal["dpo", "ipo", "orpo", "simpo"] = Field(
        "dpo",
        description="dpo (sigmoid, against a reference), ipo (squared, against a reference), orpo (odds ratio + "
        "the chosen answer's loss, no reference), simpo (length-normalised margin, no reference).",
    )
    beta: Optional[float] = Field(
        None,
        gt=0,
        description="Strength: DPO's/IPO's beta (how far the policy may move from its reference), SimPO's reward "
        "scale. Default: the loss's paper (dpo 0.1, ipo 0.1, simpo 2.0).",
    )
    gamma: Optional[float] = Field(
        None, ge=0, description="SimPO's target reward margin. Default: 1.0 (the SimPO paper)."
    )
    orpo_weight: Optional[float] = Field(
        None, ge=0, description="ORPO's weight on its odds-ratio term (lambda). Default: 0.1 (the ORPO paper)."
    )
    sft_weight: float = Field(
        0.0,
        ge=0,
        description="Adds this much of the chosen answer's mean per-token loss (RPO, Pang et al. 2024; TRL's "
        "rpo_alpha): a preference loss alone may lower both answers' likelihoods, this keeps the chosen one rising.",
    )

    @model_validator(mode="after")
    def _paper_defaults(self) -> "PreferenceSection":
        for name, value in LOSS_DEFAULTS[self.loss].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)  # not an assignment: the field stays "unset" for to_yaml
        return self


class PreferenceData(DataConfig):
    """Where the pairs come from and how they are turned into model inputs."""

    prompt_column: str = Field(
        "prompt", description="Column holding the prompt: a string, or a list of chat messages.",
        json_schema_extra=PREFERENCE,
    )  # fmt: skip
    chosen_column: str = Field(
        "chosen", description="Column holding the preferred answer (a string or a final assistant message).",
        json_schema_extra=PREFERENCE,
    )  # fmt: skip
    rejected_column: str = Field(
        "rejected", description="Column holding the worse answer (a string or a final assistant message).",
        json_schema_extra=PREFERENCE,
    )  # fmt: skip
    max_answer_tokens: int = Field(
        64, gt=0, description="Built-in chatterbot_pairs: the length bound of the starting model's own answers "
        "(the rejected ones), generated once and cached.", json_schema_extra=PREFERENCE,
    )  # fmt: skip


class PreferenceEval(EvalConfig):
    """Validation, early stopping and the final report."""

    compare_base: bool = Field(
        True, description="Also measure the starting model on the test pairs and held-out questions, once.",
        json_schema_extra=PREFERENCE,
    )  # fmt: skip
    num_generate: int = Field(
        64, ge=0, description="Held-out questions answered greedily after training (token F1, exact match, ROUGE-L "
        "against the chosen answers); 0: none.", json_schema_extra=PREFERENCE,
    )  # fmt: skip
    max_new_tokens: int = Field(
        48, gt=0, description="Generation length bound for those answers.", json_schema_extra=PREFERENCE
    )
    generate_batch_size: int = Field(
        16, gt=0, description="Prompts generated together (KV cache).", json_schema_extra=PREFERENCE
    )


SECTIONS = {"data": PreferenceData, "eval": PreferenceEval, "preference": PreferenceSection}
