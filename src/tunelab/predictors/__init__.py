"""Predictors: load a run directory and apply its model with exactly the training preprocessing. Each task family's
predictor lives in tasks/<family>/predictor.py (the registry names it); this package holds what they share.

    loader.py    load: the predictor the registry names for a run's task, or its ensemble predictor
    common.py    load_run_model: the run's model/ folder with the class the registry picks, on a device
    embedder.py  Embedder: sentence vectors from a run's fine-tuned encoder
    stream.py    predict_file: a file of any size into .jsonl/.csv, in windows aligned to row numbers; resume, shards
    ray_data.py  predict_file_ray: the same file with its windows predicted on Ray Data's actors (the [ray] extra)
    onnx.py      OnnxModel: an ONNX export on onnxruntime in place of the PyTorch model; EmbeddingPredictor (mlm)
"""

from tunelab.predictors.loader import load

__all__ = ["load"]
