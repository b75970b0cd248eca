"""The run directory and everything around it: the contract every consumer reads, checkpoints, exports, the index.

rundir.py      RunDir: run.json (the contract predictors, eval, export, serve and the dashboard read), logs, outputs
checkpoint.py  atomic checkpoints (temporary folder, rename, then `latest` switched)
sharded.py     sharded checkpoints (fsdp): each process writes its shard with torch DCP; resharded on resume
model_dir.py   model/ written as a plain Hugging Face model (LoRA merged by methods/lora.py), the adapter beside it
card.py        the model card (README.md in the run directory)
index.py       runs/index.sqlite: every run, written as runs start, log and end (`tunelab runs`, `tunelab ui`)
query.py       questions asked of the index: filters, a name to a run, two runs compared, a run's headline metric
"""
