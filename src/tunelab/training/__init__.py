"""The one training loop every task family shares, and what it needs: evaluation, optimiser, precision, processes.

fit.py             the loop, top to bottom: exact gradient accumulation, validation, checkpoints, exact resume
evaluate.py        streaming evaluation: metric sums per batch, never all logits; one all-reduce
optim.py           AdamW (no decay on biases and norms) and the warm-up + decay schedule
precision.py       bf16 autocast where the hardware has fast bf16, fp16 + gradient scaler on older GPUs, else fp32
devices.py         the device: a CUDA GPU, else Apple silicon (mps), else the CPU (`train.device`)
early_stopping.py  early stopping on a validation metric (always records the best step and value)
distributed.py     process setup through accelerate (one process, or several under torchrun); ddp or fsdp
fsdp.py            FSDP2 (`distributed.strategy: fsdp`): shard per transformer block, gather the model back
ray_train.py       Ray (the [ray] extra): the connection, what fits, and distributed.ray: the loop in Ray Train workers
progress.py        the progress bar
memory.py          the run's peak memory (run.json's peak_rss_mb): RSS sampled while it runs
report.py          where the loop's records go besides metrics.jsonl (`train.report_to`: TensorBoard)
diagnosis.py       the fit diagnosis read from the logged curves (over-fitting, over-confident, under-fitting, unstable)
"""
