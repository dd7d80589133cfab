r"""Data-parallel layouts of E² fine-tuning: global-batch arithmetic, engine checks, per-GPU memory.

The paper (arXiv 2401.06951, §4.1) trains with **global batch 16** on two 8×A100 machines for 30,000
iterations, AdamW β = (0.9, 0.95), lr 1e-5. A global batch is a product

.. math:: B_{global} = B_{device} \times n_{accum} \times n_{processes}

and :func:`plan_layout` computes the accumulation steps that make it, refusing a global batch that
does not divide. :data:`PAPER_LAYOUTS` holds the three layouts the docs spell out (1, 8 and 16 GPUs;
``configs/accelerate/*.yaml``), and :func:`layout_memory` asks :mod:`e2llm_lite.train.planner` what
each GPU holds when DDP replicates everything or ZeRO-2 / ZeRO-3 / FSDP shard it.

**Which reading of "per iteration".** Eq. (6) draws one ``g`` per iteration. With 16 processes of one
sequence each, a draw made by each process from its own random stream gives 16 scales per optimizer
step: that is the *per-sample* reading (``AugmentConfig.per_sample=True``). The project's loop and
:mod:`e2llm_lite.train.hf_trainer` derive the draw from ``(seed, step)`` instead
(:func:`e2llm_lite.augment.sample_for_step`), so all processes and micro-batches share it;
:func:`check_draw_semantics` stops a run whose settings ask for both readings at once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from e2llm_lite.validation import check_int

__all__ = [
    "Layout",
    "PAPER_LAYOUTS",
    "PAPER_HPARAMS",
    "plan_layout",
    "check_draw_semantics",
    "check_engine",
    "shards_weights",
    "SHARDINGS",
    "layout_memory",
]

#: the paper's fine-tuning hyper-parameters (§4.1)
PAPER_HPARAMS = {"global_batch": 16, "steps": 30_000, "lr": 1e-5, "betas": (0.9, 0.95), "optimizer": "AdamW"}

#: how a layout spreads training state over its N processes (see :func:`layout_memory`)
SHARDINGS = ("ddp", "zero2", "zero3", "fsdp")


@dataclass(frozen=True)
class Layout:
    """One way to make a global batch: sequences per device × accumulation steps × processes."""

    per_device: int  # sequences per forward on one device (micro-batch)
    grad_accum: int  # micro-batches per optimizer step
    num_processes: int  # data-parallel processes (GPUs)
    num_machines: int = 1  # nodes the processes span (for the launch command)

    @property
    def global_batch(self) -> int:
        """Sequences per optimizer step, over all processes."""
        return self.per_device * self.grad_accum * self.num_processes

    def describe(self) -> str:
        return (f"global batch {self.global_batch} = {self.per_device} per device × {self.grad_accum} accumulation "
                f"× {self.num_processes} processes")


def plan_layout(global_batch: int, num_processes: int = 1, per_device: int = 1, num_machines: int = 1) -> Layout:
    """The layout whose accumulation steps make ``global_batch``; ValueError naming the values when none does."""
    global_batch = check_int("global_batch", global_batch, 1)
    num_processes = check_int("num_processes", num_processes, 1)
    per_device = check_int("per_device", per_device, 1)
    num_machines = check_int("num_machines", num_machines, 1)
    if num_processes % num_machines:
        raise ValueError(f"num_processes={num_processes} must be a multiple of num_machines={num_machines}")
    per_step = per_device * num_processes
    if global_batch % per_step:
        ok = [d for d in range(1, global_batch + 1) if global_batch % (d * num_processes) == 0]
        raise ValueError(
            f"global_batch={global_batch} is not divisible by per_device × num_processes = {per_device} × "
            f"{num_processes} = {per_step}, so no whole number of accumulation steps makes it; with "
            f"{num_processes} processes valid per_device values are {ok or 'none (use fewer processes)'}"
        )
    return Layout(per_device, global_batch // per_step, num_processes, num_machines)


#: the paper's global batch 16 on 1, 8 and 16 GPUs (configs/accelerate/ and docs/multi_gpu.md)
PAPER_LAYOUTS = {
    "1gpu": plan_layout(16, num_processes=1),  # 1 × 16 × 1
    "8gpu": plan_layout(16, num_processes=8),  # 1 × 2 × 8
    "16gpu": plan_layout(16, num_processes=16, num_machines=2),  # 1 × 1 × 16: the paper's 2 × 8 A100
}


def check_draw_semantics(per_sample: bool, per_device: int, num_processes: int, draw_per: str | None) -> None:
    """ValueError when ``draw_per`` (``"iteration"`` | ``"sample"`` | None = no request) contradicts ``per_sample``.

    The case it exists for: ``per_sample=True`` with one sequence per process *is* one draw per process
    (16 scales per optimizer step on the paper's 16 GPUs), not the per-iteration g of Eq. (6).
    """
    if draw_per is None:
        return
    if draw_per not in ("iteration", "sample"):
        raise ValueError(f"draw_per must be 'iteration', 'sample' or None, got {draw_per!r}")
    if draw_per == "iteration" and per_sample:
        per_step = per_device * num_processes
        raise ValueError(
            f"draw_per='iteration' asks for one (g, t) per optimizer step, but per_sample=True draws one per "
            f"sequence: with per_device={per_device} on num_processes={num_processes} that is {per_step} different "
            f"draws per micro-batch step" + (" (one per process)" if per_device == 1 else "")
            + "; set AugmentConfig(per_sample=False) for Eq. (6)'s per-iteration g"
        )
    if draw_per == "sample" and not per_sample:
        raise ValueError("draw_per='sample' asks for one (g, t) per sequence, but per_sample=False; set "
                         "AugmentConfig(per_sample=True)")


def _requested_engine(env=None) -> str | None:
    env = os.environ if env is None else env
    if str(env.get("ACCELERATE_USE_DEEPSPEED", "")).lower() == "true":
        return "DeepSpeed"
    if str(env.get("ACCELERATE_USE_FSDP", "")).lower() == "true":
        return "FSDP"
    return None


def shards_weights(env=None) -> bool:
    """True when the accelerate launch config shards the weights (FSDP, or DeepSpeed ZeRO-3)."""
    env = os.environ if env is None else env
    engine = _requested_engine(env)
    return engine == "FSDP" or (engine == "DeepSpeed" and str(env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "")) == "3")


def check_engine(requested: str | None = None, gpu_available: bool | None = None, env=None) -> None:
    """ValueError when FSDP or DeepSpeed is asked for on a machine without a GPU.

    ``requested`` defaults to what ``accelerate launch --config_file …`` exported
    (``ACCELERATE_USE_FSDP`` / ``ACCELERATE_USE_DEEPSPEED``). Without this check accelerate 1.x quietly
    runs plain DDP on CPU processes (FSDP plugin ignored), and DeepSpeed's CPU backend hung on a
    2-process start here: better one clear line than a run that is not what the config says.
    """
    requested = requested or _requested_engine(env)
    if requested is None:
        return
    if gpu_available is None:
        import torch

        gpu_available = torch.cuda.is_available()
    if not gpu_available:
        cfg = "ACCELERATE_USE_DEEPSPEED=true" if requested == "DeepSpeed" else "ACCELERATE_USE_FSDP=true"
        raise ValueError(
            f"{requested} was requested ({cfg}, set by the accelerate config) but this machine has no GPU "
            f"(torch.cuda.is_available() is False); FSDP and DeepSpeed ZeRO run on GPUs — on CPU use "
            f"`torchrun --nproc_per_node N -m e2llm_lite.cli train …` (DDP over gloo) or configs/accelerate/ddp_cpu.yaml"
        )


def layout_memory(model, layout: Layout, sharding: str = "ddp", **plan_kw) -> dict:
    """Per-GPU peak memory (bytes) of one layout, from :func:`e2llm_lite.train.planner.estimate`.

    ``ddp`` replicates weights, gradients and optimizer states on every GPU; ``zero2`` shards gradients
    and optimizer states over the N processes; ``zero3`` and ``fsdp`` (FULL_SHARD) shard the weights too
    (plus one gathered layer at a time). Activations depend only on the micro-batch.
    """
    from e2llm_lite.train.planner import PlanConfig, estimate

    cfg = PlanConfig(micro_batch=layout.per_device, global_batch=layout.global_batch,
                     num_processes=layout.num_processes, sharding=sharding, **plan_kw)
    est = estimate(model, cfg)
    return {**est.to_dict(), "layout": layout.describe(), "sharding": sharding}
