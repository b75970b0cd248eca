"""Masked-token language modelling (`mlm`): adapt an encoder to in-domain raw text before fine-tuning a classifier.

    data  -> raw documents streamed, split by document, [CLS] piece [SEP] rows, masks drawn once with train.seed
    model -> AutoModelForMaskedLM (MiniLM ships no MLM head: a fresh one is trained with the encoder)
    rest  -> as for causal LMs: base perplexity, fit, tuned perplexity, model/ + card (tasks/causal_lm.fit_and_report)

Pretrain -> adapt -> fine-tune: a classification recipe's model.name can point at runs/<mlm run>/model.
"""

from __future__ import annotations

from tunelab.config import Config
from tunelab.data.packing import as_rows
from tunelab.data.text import mlm_pieces, read_text_splits
from tunelab.methods import apply_method
from tunelab.models.fast_paths import apply_fast_paths
from tunelab.models.load import load_masked_lm, load_tokenizer, plain, resolve
from tunelab.models.masked_lm import MaskedLM
from tunelab.runs.rundir import RunDir
from tunelab.tasks.causal_lm import LMData, fit_and_report
from tunelab.training.distributed import make_accelerator, seed_everything


def train(
    cfg: Config, run: RunDir, resume: bool = False, show_progress: bool = True, on_step=lambda step: None
) -> dict:
    accelerator = make_accelerator(cfg.train.num_threads)
    seed_everything(cfg.train.seed)
    source = resolve(cfg.model)
    local = plain(source)
    tokenizer = load_tokenizer(local)
    d = cfg.data
    splits = read_text_splits(cfg, mlm_pieces(tokenizer, d.max_length, d.mlm_probability, cfg.train.seed))
    info = {
        "source": str(d.train or f"built-in:{d.dataset}"),
        "documents": splits.documents,
        "tokens": splits.tokens,
        "train": len(splits.train),
        "validation": len(splits.validation),
        "test": len(splits.test),
        "dropped_duplicates": splits.dropped_duplicates,
        "budget_reached": splits.budget_reached,
        "truncated_train": 0,
    }
    data = LMData(
        *(as_rows(part, d.max_length, False) for part in (splits.train, splits.validation, splits.test)),
        splits.fingerprint,
        info,
    )
    model = apply_method(load_masked_lm(local, cfg.model), cfg.method, None)
    apply_fast_paths(model, cfg.train)
    spec = MaskedLM(tokenizer.pad_token_id or 0)
    return fit_and_report(
        cfg, run, model, tokenizer, spec, data, source, accelerator, "fill-mask", resume, show_progress, on_step
    )
