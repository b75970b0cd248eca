"""Sequence classification, multilabel and regression: everything these tasks mean, in one folder.

data.py       read labelled files or built-ins, label space, stratified split, tokenise (cached), collate
spec.py       what the loop calls: collate, units (examples), forward -> (logits, summed loss); class weights
metrics.py    accuracy / precision / recall / F1 and confusion (classification), multilabel, regression
predictor.py  TextClassifier: labels and scores for texts (tunelab.load, predict, eval)
story.py      the run: data -> model + method -> fit -> best -> test -> outputs (confusion plot)
config.py     recipe fields: data (text pairs, label separator, few-shot, augmentation), eval (threshold, calibrate)
calibration.py  the temperature fitted on validation and folded into the saved head
errors.py     error analysis in the test pass: errors.csv, confusions.md, metric by length
ensemble.py   EnsembleClassifier: an ensemble directory loaded like a run
doctor.py     the rows `tunelab doctor` checks
"""
