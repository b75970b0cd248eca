"""THE registry: every task, and every fact about it that code outside its family needs, as plain data.

config, api, cli, predictors and every later capability (serve, tune, cross-validation, doctor, the dashboard) ask
this table; none keeps a copy. It imports nothing of tunelab, so anything may read it without an import cycle: the
code of a family is named by dotted paths ("module:attribute") and imported only when used (`load_object`).

Adding a task = one folder (or module) under tasks/ with its story, plus one entry here. Which transformers class
loads a run's model is `model_class(task, model_config)`, below: predictors and messages ask it, not auto_class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class TaskFamily:
    story: str  # "module:function" that trains it: train(cfg, run, resume, show_progress, on_step, on_validation)
    predictor: Optional[str]  # "module:class" that loads a finished run (tunelab.load); None: no predictor yet
    dataset: str  # built-in dataset when the recipe names none
    model: str  # built-in model when the recipe names none
    auto_class: str  # the transformers class that loads the run's model/ folder
    pipeline_tag: str  # Hugging Face pipeline tag (model card, transformers.pipeline)
    peft_task: Optional[str]  # PEFT TaskType name for LoRA (None: a plain PeftModel)
    metric: str  # the validation metric that picks the best checkpoint by default (eval.metric: auto)
    mode: str  # "max" or "min": the direction of that metric
    metrics: str  # "module:class" of its validation metrics; the class's `higher_is_better` names every one it computes
    usage: str  # how to use a finished run with tunelab (the model card and the report say it)
    problem_type: Optional[str] = None  # transformers config.problem_type (sequence-level heads)
    endpoints: tuple[str, ...] = ()  # what `tunelab serve` answers: classify, entities, embeddings, chat, generate
    stratify: Optional[str] = None  # how folds and splits stratify examples: "label", "quantile" or None
    calibrate: bool = False  # its probabilities can be calibrated (a temperature)
    cross_validate: bool = False  # `--folds K` applies
    examples: Optional[str] = None  # "module:function": cfg -> Splits of labelled records (text, label, source, line)
    ensemble: Optional[str] = None  # "module:class" that loads an ensemble directory (`tunelab ensemble`); None: none
    doctor: Optional[str] = None  # "module:FamilyData" that hands `tunelab doctor` the family's rows (doctor/family.py)
    target: Optional[str] = None  # a label is: "single-label", "multi-label" (a set), "real-valued", "tags" (per word)
    auto_class_for: Optional[str] = None  # "module:function": model config -> class name, where it depends on the model
    config: Optional[str] = None  # "module:SECTIONS": its recipe sections {name: class} (tasks/<family>/config.py)
    defaults: Optional[str] = None  # "module:DEFAULTS": {"section.field": value} where a recipe sets none (config.py)
    exports: tuple[str, ...] = ()  # `tunelab export --format` beyond "hf" (the plain model): "onnx", "gguf"
    held_out: Optional[str] = None  # "module:function": (cfg, file or None) -> [(prompt, answer)]: held-out prompts and
    #   reference answers (the test split, or the file) that an export is checked on (exports/gguf.py; mlm: (text, "")
    #   documents for the ONNX parity, exports/parity.py)
    pipeline: bool = True  # transformers.pipeline(pipeline_tag) loads its model (the card shows it); False: none in
    #   transformers 5 (summarization, translation: the family's own card part shows the model class and generate)


_SEQUENCE = dict(story="tunelab.tasks.classify.story:train",
                 predictor="tunelab.tasks.classify.predictor:TextClassifier", dataset="movie_reviews", model="minilm",
                 auto_class="AutoModelForSequenceClassification",
                 pipeline_tag="text-classification", peft_task="SEQ_CLS", endpoints=("classify", "embeddings"),
                 usage='tunelab predict RUN "some text"   (or --input texts.csv --output predictions.jsonl)',
                 cross_validate=True, examples="tunelab.tasks.classify.data:read_records",
                 ensemble="tunelab.tasks.classify.ensemble:EnsembleClassifier",
                 doctor="tunelab.tasks.classify.doctor:DATA",
                 config="tunelab.tasks.classify.config:SECTIONS", exports=("onnx",))  # fmt: skip
_CAUSAL = dict(story="tunelab.tasks.lm.story:train", predictor="tunelab.tasks.lm.predictor:Generator",
               model="smollm2", auto_class="AutoModelForCausalLM", pipeline_tag="text-generation",
               peft_task="CAUSAL_LM", metric="perplexity", mode="min",
               metrics="tunelab.tasks.lm.metrics:PerplexityMetrics",
               config="tunelab.tasks.lm.config:SECTIONS", exports=("gguf",))  # fmt: skip
# text-to-text: decoder-only or encoder-decoder, as the model's config says (auto_class_for; PEFT_TASKS below); no
# cross-validation and no ensembles (cross_validate, ensemble: their defaults)
_TEXT2TEXT = dict(story="tunelab.tasks.seq2seq.story:train", predictor="tunelab.tasks.seq2seq.predictor:TextToText",
                  model="smollm2", auto_class="AutoModelForCausalLM", peft_task="CAUSAL_LM", mode="max",
                  auto_class_for="tunelab.tasks.seq2seq.kind:auto_class_for",
                  metrics="tunelab.tasks.seq2seq.metrics:Text2TextMetrics",
                  config="tunelab.tasks.seq2seq.config:SECTIONS",
                  defaults="tunelab.tasks.seq2seq.config:DEFAULTS", endpoints=("generate",), pipeline=False,
                  doctor="tunelab.tasks.seq2seq.doctor:PAIRS")  # fmt: skip
_METRICS = "tunelab.tasks.classify.metrics:"
_CHAT = 'tunelab generate RUN "a question"   (or tunelab chat RUN)'
_CONTINUE = 'tunelab generate RUN "text to continue"'
_ADAPTED = "tunelab train recipe.yaml --model RUN/model   (an adapted encoder to fine-tune)"

TASKS: dict[str, TaskFamily] = {
    "classification": TaskFamily(**_SEQUENCE, metric="accuracy", mode="max", problem_type="single_label_classification",
                                 stratify="label", calibrate=True, metrics=_METRICS + "ConfusionMetrics",
                                 target="single-label"),
    "multilabel": TaskFamily(**_SEQUENCE, metric="f1_samples", mode="max", problem_type="multi_label_classification",
                             calibrate=True, metrics=_METRICS + "MultiLabelMetrics", target="multi-label"),
    "regression": TaskFamily(**_SEQUENCE, metric="mse", mode="min", problem_type="regression", stratify="quantile",
                             metrics=_METRICS + "RegressionMetrics", target="real-valued"),
    "ner": TaskFamily(story="tunelab.tasks.ner.story:train", predictor="tunelab.tasks.ner.predictor:EntityTagger",
                      dataset="wnut16", model="minilm", auto_class="AutoModelForTokenClassification",
                      pipeline_tag="token-classification", peft_task="TOKEN_CLS", metric="f1", mode="max",
                      usage='tunelab predict RUN "a sentence"   (entity spans with character offsets)',
                      endpoints=("entities", "embeddings"),  # cross-validation: not built for ner yet
                      metrics="tunelab.tasks.ner.metrics:EntityMetrics", doctor="tunelab.tasks.ner.doctor:DATA",
                      target="tags", config="tunelab.tasks.ner.config:SECTIONS", exports=("onnx",)),
    "sft": TaskFamily(**_CAUSAL, dataset="chatterbot", endpoints=("chat", "generate"), usage=_CHAT,
                      doctor="tunelab.tasks.lm.doctor:CHATS", held_out="tunelab.tasks.lm.held_out:chats"),
    "lm": TaskFamily(**_CAUSAL, dataset="news", endpoints=("generate",), usage=_CONTINUE,
                     doctor="tunelab.tasks.lm.doctor:DOCUMENTS", held_out="tunelab.tasks.lm.held_out:documents"),
    "summarization": TaskFamily(**_TEXT2TEXT, dataset="aclsum", metric="rougeL", pipeline_tag="summarization",
                                usage='tunelab predict RUN "a document"   (or --input docs.jsonl --output out.jsonl)'),
    "translation": TaskFamily(**_TEXT2TEXT, dataset="bible_fr_en", metric="chrf", pipeline_tag="translation",
                              usage='tunelab predict RUN "a sentence"   (or --input in.jsonl --output out.jsonl)'),
    # preference: a chat model tuned on (prompt, chosen, rejected); its runs generate, chat and serve as sft runs do
    "preference": TaskFamily(story="tunelab.tasks.preference.story:train",
                             predictor="tunelab.tasks.lm.predictor:Generator", dataset="chatterbot_pairs",
                             model="smollm2", auto_class="AutoModelForCausalLM", pipeline_tag="text-generation",
                             peft_task="CAUSAL_LM", metric="loss", mode="min",
                             metrics="tunelab.tasks.preference.metrics:PreferenceMetrics",
                             endpoints=("chat", "generate"), usage=_CHAT, exports=("gguf",),
                             held_out="tunelab.tasks.preference.held_out:pairs",
                             config="tunelab.tasks.preference.config:SECTIONS",
                             defaults="tunelab.tasks.preference.config:DEFAULTS"),
    "mlm": TaskFamily(story="tunelab.tasks.lm.story_mlm:train", predictor=None, dataset="news", model="minilm",
                      auto_class="AutoModelForMaskedLM", pipeline_tag="fill-mask", peft_task=None, metric="perplexity",
                      mode="min", usage=_ADAPTED, endpoints=("embeddings",),
                      metrics="tunelab.tasks.lm.metrics:PerplexityMetrics",
                      doctor="tunelab.tasks.lm.doctor:MLM_DOCUMENTS", config="tunelab.tasks.lm.config:SECTIONS",
                      exports=("onnx",), held_out="tunelab.tasks.lm.held_out:texts"),
}  # fmt: skip


def load_object(dotted: str):
    """The object a dotted path "module:attribute" names, imported now."""
    import importlib

    module, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module), attribute)


# the PEFT task type of each model class a family's `auto_class_for` may pick (LoRA wraps the model accordingly)
PEFT_TASKS = {"AutoModelForCausalLM": "CAUSAL_LM", "AutoModelForSeq2SeqLM": "SEQ_2_SEQ_LM"}


def peft_task(task: str, model_config=None) -> Optional[str]:
    """The PEFT TaskType name for LoRA on this task's model: the family's `peft_task`, or, where the class depends on
    the model (`auto_class_for`), the type of the class picked for this model's config."""
    family = TASKS[task]
    if family.auto_class_for and model_config is not None:
        return PEFT_TASKS.get(model_class(task, model_config), family.peft_task)
    return family.peft_task


def model_class(task: Optional[str], model_config=None) -> str:
    """The transformers class (its name) that loads a run's model/ folder: the family's `auto_class_for` hook applied to
    the model's config where the family names one and a config is given, else its `auto_class`; "AutoModel" (the
    generic class) for a task this version does not know. Predictors and export's message ask this, nothing else."""
    family = TASKS.get(task)
    if family is None:
        return "AutoModel"
    if family.auto_class_for and model_config is not None:
        return load_object(family.auto_class_for)(model_config)
    return family.auto_class
