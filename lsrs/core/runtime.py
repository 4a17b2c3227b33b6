"""Where and how the computation runs: device, numeric precision, and the processes of a torchrun job.

One `Runtime` per stage process, made from the `runtime` params section:

* device: `auto` is `cuda:<LOCAL_RANK>` when CUDA is available, else the CPU.
* precision: `fp32`, or autocast to `fp16` / `bf16` for the model forward passes (the official VAR
  sampler runs under fp16 autocast; `tf32` switches TF32 matmuls and convolutions on CUDA).
* processes: started with `torchrun --nproc_per_node N` (any number of nodes), every rank takes
  the items `i` with `i % world == rank` of a job split in fixed units (token-store shards,
  sampling batches), so the units, and therefore their bytes, are those of a one-process run.
  Rank 0 does whatever needs all items (manifests, features, metrics). Ranks meet in `barrier()`.

The process group is torch.distributed's (gloo on CPU, NCCL on CUDA); it is created here, once,
only when torchrun's environment says there is more than one process.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class RuntimeConfig:
    """The `runtime` params section. Batch sizes live with the work they batch (sampling.batch_size,
    tokens.encode_batch_size, evaluation.feature_batch_size)."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "fp32"  # fp32 | fp16 | bf16 (autocast of model forward passes)
    tf32: bool = False  # CUDA only: TF32 for fp32 matmuls and convolutions
    launch: str = "python"  # how dvc.yaml starts the stages that split work: python | torchrun --nproc_per_node=N ...

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str = "fp32"
    rank: int = 0
    world: int = 1
    object_group: object = None  # a gloo group for gathering Python objects (NCCL would stage them on the GPU)

    @classmethod
    def start(cls, cfg: RuntimeConfig = RuntimeConfig()) -> "Runtime":
        """The runtime of this process; joins torchrun's process group when WORLD_SIZE > 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        device = _pick_device(cfg.device, local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
            torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
            torch.backends.cudnn.allow_tf32 = cfg.tf32
        if device.type == "cpu" and cfg.precision == "fp16":
            warnings.warn("runtime.precision fp16 on the CPU: autocast runs about 10x slower than fp32 there "
                          "(torch 2.14); use bf16 or fp32 on CPUs", stacklevel=2)
        group = None
        if world > 1:
            if not dist.is_initialized():
                dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
            group = dist.new_group(backend="gloo") if device.type == "cuda" else dist.group.WORLD
        return cls(device, cfg.precision, rank, world, group)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def mine(self, n: int) -> range:
        """The units (0..n-1) this rank works on: every world-th one, starting at its rank."""
        return range(self.rank, n, self.world)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def gather(self, obj) -> list | None:
        """Every rank's `obj` on rank 0, in rank order (one process: [obj]); None on the other ranks."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0, group=self.object_group)
        return out

    def autocast(self):
        """A context for model forward passes: autocast to the configured dtype, or nothing for fp32."""
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def reset_peak_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory_mib(self) -> float | None:
        """Peak GPU memory allocated by this process since the last reset (None on the CPU)."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        return None

    def describe(self) -> str:
        procs = f", rank {self.rank} of {self.world}" if self.distributed else ""
        return f"{self.device} {self.precision}{procs}"


CPU = Runtime(torch.device("cpu"))  # the default of library functions called without a runtime


def _pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"runtime.device is {name!r} but CUDA is not available here; use auto or cpu")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    return device
