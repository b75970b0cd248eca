"""Methods turn a loaded model into the thing that trains: full, lora (PEFT) or frozen backbone.

apply.py   apply_method(): the recipe's method applied to a loaded model; count_parameters(): trainable and total
full.py    every weight trains
lora.py    LoRA/DoRA adapters through PEFT; the merge of a trained adapter into plain weights for model/
frozen.py  the backbone frozen, the head (and the top `unfreeze_top_layers` layers) trained
"""

from tunelab.methods.apply import apply_method, count_parameters

__all__ = ["apply_method", "count_parameters"]
