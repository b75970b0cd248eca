"""Methods turn a loaded model into the thing that trains: full, lora (PEFT) or frozen backbone.

apply.py   apply_method(): the recipe's method applied to a loaded model; count_parameters(): trainable and total
full.py    every weight trains
lora.py    LoRA/DoRA adapters through PEFT; adapters_off() for the base model's row; the merge of a trained
           adapter into plain weights for model/
frozen.py  the backbone frozen, the head (and the top `unfreeze_top_layers` layers) trained
"""

from tunelab.methods.apply import apply_method, count_parameters
from tunelab.methods.lora import adapters_off

__all__ = ["adapters_off", "apply_method", "count_parameters"]
