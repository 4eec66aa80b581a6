"""Bytes one checkpoint save writes (and, mirrored to S3, uploads) for VideoMAE-base + AdamW.

    python benchmarks/checkpoint_size.py

Builds the VideoMAE-base architecture (random weights: no download; the sizes are the same),
gives AdamW its state with one step on zero gradients, and serialises what socal's
``step-NNNNNN.pt`` holds (model, optimizer, scheduler, counters, RNG) and ``best.pt`` (weights).
"""

from __future__ import annotations

import io

import torch
from transformers import VideoMAEConfig, VideoMAEForVideoClassification

from socal.training.runtime import rng_state


def size(obj: object) -> int:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.tell()


def main() -> None:
    model = VideoMAEForVideoClassification(VideoMAEConfig(num_labels=1))  # videomae-base shape
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # creates exp_avg and exp_avg_sq for every parameter
    weights = size(model.state_dict())
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "ranks": [{"rng": rng_state()}], "step": 1}  # fmt: skip
    full = size(state)
    print(f"parameters                      {params / 1e6:8.2f} M")
    print(f"on paper: 4 B weights + 8 B AdamW {params * 12 / 1e9:8.3f} GB per checkpoint")
    print(f"step-NNNNNN.pt (measured)       {full / 1e9:8.3f} GB  (one upload per save)")
    print(f"best.pt (weights only)          {weights / 1e9:8.3f} GB  (one upload per improvement)")
    # Before: last.pt renamed to previous.pt, then a new last.pt: two new files per save.
    print(f"before: last.pt + previous.pt   {2 * full / 1e9:8.3f} GB per save, at least")


if __name__ == "__main__":
    main()
