"""tunelab: fine-tune a pretrained language model on your own data, end to end, from one recipe.

run = tunelab.train("recipes/classify_movie_reviews.yaml")   # or a Config, or a dict
clf = tunelab.load(run.dir)
clf.predict(["what a wonderful film"])
study = tunelab.tune("recipe.yaml")                          # a recipe with a search: block
ens = tunelab.ensemble(from_folds="runs/cv", out="runs/ens")  # then tunelab.load("runs/ens") like any run
"""

__version__ = "0.1.0"
__all__ = ["Config", "ensemble", "evaluate", "export", "load", "train", "tune", "__version__"]


def __getattr__(name):  # lazy: `import tunelab` and `tunelab --help` stay fast (no torch import)
    if name in ("ensemble", "evaluate", "export", "load", "train"):
        from tunelab import api

        return getattr(api, name)
    if name == "tune":
        from tunelab.search import tune

        return tune
    if name == "Config":
        from tunelab.config import Config

        return Config
    raise AttributeError(name)
