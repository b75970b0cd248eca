"""Masked-token language modelling (`mlm`): adapt an encoder to in-domain raw text before fine-tuning a classifier.

    data  -> raw documents streamed, split by document, [CLS] piece [SEP] rows, masks drawn once with train.seed
    model -> AutoModelForMaskedLM (MiniLM ships no MLM head: a fresh one is trained with the encoder)
    rest  -> as for causal LMs: base perplexity, fit, tuned perplexity, model/ + card (story.fit_and_report)

Pretrain -> adapt -> fine-tune: a classification recipe's model.name can point at runs/<mlm run>/model.
"""

from __future__ import annotations

from tunelab.config import Config
from tunelab.methods import apply_method
from tunelab.models.fast_paths import apply_fast_paths
from tunelab.models.load import load_masked_lm, load_tokenizer, plain, resolve
from tunelab.registry import TASKS
from tunelab.runs.rundir import RunDir
from tunelab.tasks.common import Story
from tunelab.tasks.lm.spec_mlm import MaskedLM
from tunelab.tasks.lm.story import fit_and_report, text_data
from tunelab.tasks.lm.text import mlm_pieces, read_text_splits


def train(cfg: Config, run: RunDir, resume=False, show_progress=True, on_step=None, on_validation=None) -> dict:
    story = Story.set_up(cfg, run, resume, show_progress, on_step or (lambda step: None), on_validation)
    source = resolve(cfg.model)
    local = plain(source)
    tokenizer = load_tokenizer(local)
    d = cfg.data
    splits = read_text_splits(cfg, mlm_pieces(tokenizer, d.max_length, d.mlm_probability, cfg.train.seed))
    data = text_data(cfg, splits, packing=False)  # [CLS] piece [SEP]: one piece per row
    model = apply_method(load_masked_lm(local, cfg.model), cfg.method, TASKS[cfg.task].peft_task)
    apply_fast_paths(model, cfg.train)
    spec = MaskedLM(tokenizer.pad_token_id or 0)
    return fit_and_report(story, model, tokenizer, spec, data, source)
