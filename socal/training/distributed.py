"""Data-parallel training through torchrun: one process per device, rank 0 speaks and writes.

Nothing here starts a process group unless torchrun (or SageMaker's Torchrun) set WORLD_SIZE,
so the single-process path is exactly the code a laptop runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_node_main(self) -> bool:
        """Local rank 0: does the work each node needs on its own disk."""
        return self.local_rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init(device: torch.device) -> Dist:
    """Join the process group torchrun describes in the environment (NCCL on GPU, gloo on CPU)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 2:
        return Dist()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":  # object collectives use the current device: one GPU per rank
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank)


def all_gather(obj: Any, dist_info: Dist) -> list[Any]:
    """Every rank's ``obj``, in rank order (just ``[obj]`` without a process group)."""
    if not dist_info.enabled:
        return [obj]
    import torch.distributed as dist

    gathered: list[Any] = [None] * dist_info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def any_rank(flags: list[bool], dist_info: Dist, device: torch.device) -> list[bool]:
    """Each of ``flags``, true if it is true on any rank: one all-reduce (MAX) of a small
    tensor, not a pickled object gather (``device``: where the backend's tensors live)."""
    if not dist_info.enabled:
        return flags
    import torch.distributed as dist

    tensor = torch.tensor(flags, dtype=torch.int32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(flag) for flag in tensor.tolist()]


def broadcast(obj: Any, dist_info: Dist) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not dist_info.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_module(module: torch.nn.Module, dist_info: Dist) -> None:
    """Rank 0's parameters and buffers into every rank's ``module``, in place."""
    if not dist_info.enabled:
        return
    import torch.distributed as dist

    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=0)


def barrier(dist_info: Dist) -> None:
    if dist_info.enabled:
        import torch.distributed as dist

        dist.barrier()


def shutdown(dist_info: Dist) -> None:
    if dist_info.enabled:
        import torch.distributed as dist

        dist.destroy_process_group()
