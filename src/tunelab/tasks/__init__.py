"""Task families, one folder each, and the steps their stories share.

classify/   classification, multilabel and regression
ner/        named-entity recognition
lm/         chat SFT (sft), continued pre-training (lm), masked-LM adaptation (mlm)
seq2seq/    text-to-text: summarization and translation, decoder-only or encoder-decoder
preference/ preference tuning of chat models: DPO, IPO, ORPO, SimPO
common.py   Story: the steps every family's run shares (set up, record the start, fit, restore the best, test, outputs)
preview.py  `tunelab data preview`: training examples rendered as the model sees them

Each family folder holds its recipe fields (config.py), data, spec (what the loop calls), metrics, predictor, doctor
adapter and story. What each task needs is in the registry, `tunelab/registry.py`: a leaf module outside this package,
so the config, the CLI and the components read it without importing any family.
"""
