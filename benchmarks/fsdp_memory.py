"""fsdp memory: how much each process holds while it checkpoints and while model/ is gathered (issue 33 b).

    MALLOC_MMAP_THRESHOLD_=65536 torchrun --standalone --nproc_per_node 2 benchmarks/fsdp_memory.py   # gloo, CPU

A random BERT (8 layers, width 512: 165 MB of fp32 weights) sharded by training/fsdp.py over the processes, one AdamW
step taken, then three phases as fit and the task story run them, each measured as the rise of the process's
anonymous resident memory (RssAnon, sampled every 0.5 ms; freed memory trimmed before each phase) over its start:
  sharded checkpoint   Checkpointer(sharded=True).save: every process writes its shards of the weights and the AdamW
                       state (torch DCP); no process should gather anything
  best/                Checkpointer.save_best: the full trainable weights gathered to rank 0's CPU, one file
  model/               fsdp.gathered (the plain model, whole on every process for the test pass), restore_best, and
                       rank 0's save_pretrained: the full model should be held once, not twice
(MALLOC_MMAP_THRESHOLD_: large freed buffers go back to the system at once, so the rise is what is held.)
Measured 2026-12-07 on a shared 2-core machine, torch 2.13, peak rise x the model (rank 0 / rank 1):
  sharded checkpoint 0.05 / 0.04; best/ 1.02 / 0.75; model/ 1.00 / 1.02.
Rank 1's 0.75 during best/ is not a kept copy: it keeps no tensor, and a loop that gathers one parameter at a time and
drops each shows the same rise (buffers of the allocator or of gloo's threads, not traced further).
"""

from __future__ import annotations

import ctypes
import gc
import tempfile
import threading
import time

import torch
import torch.distributed as dist


def anonymous_memory() -> int:
    """This process's resident anonymous memory in bytes (a mapped safetensors file's pages are not counted)."""
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("RssAnon:")).split()[1]) * 1024


def peak_rise(fn) -> float:
    """The most the anonymous memory rose over its start while fn() ran, in bytes (every process, after a barrier)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    dist.barrier()
    start, peak, done = anonymous_memory(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anonymous_memory())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    fn()
    done.set()
    sampler.join()
    return max(peak[0], anonymous_memory()) - start


def main() -> None:
    from transformers import BertConfig, BertForSequenceClassification

    from tunelab.runs.checkpoint import Checkpointer, restore_best
    from tunelab.training import fsdp

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    config = BertConfig(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=2048)
    model = BertForSequenceClassification(config)
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    box = [tempfile.mkdtemp() if rank == 0 else None]
    dist.broadcast_object_list(box)
    model = fsdp.shard(model, torch.device("cpu"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(input_ids=torch.ones(2, 8, dtype=torch.long)).logits.sum().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    checkpointer = Checkpointer(box[0], rank, dist.get_world_size(), gather=fsdp.trainable_state, sharded=True)

    rises = {"sharded checkpoint": peak_rise(lambda: checkpointer.save(1, model, {}, dist.barrier, optimizer))}
    rises["best/"] = peak_rise(lambda: checkpointer.save_best(model))

    def final() -> None:
        plain = fsdp.gathered(model)
        restore_best(plain, box[0])
        if rank == 0:
            plain.save_pretrained(tempfile.mkdtemp(), safe_serialization=True)

    rises["model/"] = peak_rise(final)
    row = ", ".join(f"{name} {rise / size:.2f}" for name, rise in rises.items())
    print(f"rank {rank}: model {size / 1e6:.0f} MB; peak rise x the model: {row}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
