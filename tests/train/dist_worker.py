"""One rank of the 2-process tests in ``test_distributed.py`` (run by ``torchrun --nproc_per_node 2``).

``python -m torch.distributed.run --nproc_per_node 2 tests/train/dist_worker.py OUT PHASE [PHASE ...]``
runs the phases in order in one process group (each launch costs ~10 s of imports on a 2-core CPU):

* ``full``   — 6 steps, checkpoints every 3, uninterrupted: per-rank draw log, history, final weights;
* ``crash``  — the same run in another folder; rank 1 dies (``os._exit``) after step 4, so torchrun
  tears the job down with the last checkpoint at step 3;
* ``resume`` — the crashed run relaunched: resumes from step 3 and finishes;
* ``fsdp``   — torch's FSDP2 (``fully_shard``) on gloo, 3 steps of Algorithm 1 written out by hand
  with the same data and draws: accelerate 1.x builds FSDP only on GPU process groups, so this
  checks the part that is ours — the E² hook on sharded parameters — not the loop.

Each phase writes ``OUT/<phase>/rank<r>.json`` (draw log, history) and rank 0 ``weights.safetensors``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from e2llm_lite import augment, hf  # noqa: E402
from e2llm_lite.augment import AugmentConfig  # noqa: E402
from e2llm_lite.data import PackedWindows  # noqa: E402
from e2llm_lite.models import tiny_model  # noqa: E402
from e2llm_lite.train.loop import TrainConfig, train  # noqa: E402

STEPS, CKPT_EVERY, CRASH_AFTER = 6, 3, 4


def model():
    return tiny_model(vocab_size=64, hidden_size=32, num_layers=2, num_heads=2, base_window=16, seed=1)


def data(rows: int = 2):
    """The global micro-batch: ``rows`` windows; each of the 2 processes trains half of them."""
    return PackedWindows(torch.arange(3000) * 7 % 64, 16, rows, seed=5)


def config(**kw) -> TrainConfig:
    base = dict(steps=STEPS, lr=3e-3, batch_size=1, grad_accum=2, seed=11, scheme="e2", log_every=1,
                augment=AugmentConfig(base_window=16, train_len=16, g_max=4, n_sink=2), draw_per="iteration")
    base.update(kw)
    return TrainConfig(**base)


def _write(out: Path, rank: int, log: list, history: list, weights: dict | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(json.dumps({"draws": log, "history": history}))
    if weights is not None and rank == 0:
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous() for k, v in weights.items()}, str(out / "weights.safetensors"))


def run_loop(out: Path, phase: str, ckpt: Path, crash: bool) -> None:
    rank = int(os.environ["RANK"])
    log = []

    def record(outputs, input_ids, index, draw):  # extra_loss hook: sees every micro-batch's draw
        log.append({"index": index, "g": draw.scale.tolist(), "t": draw.shift.tolist(),
                    "pos0": draw.position_ids[0, :4].tolist(), "tokens": input_ids[:, :3].tolist()})
        return None

    def on_step(step, m, rec):
        if crash and step == CRASH_AFTER and rank == 1:
            os._exit(1)  # a killed process: no clean-up, no checkpoint for step 4

    m = model()
    res = train(m, data(), config(checkpoint_dir=str(ckpt), checkpoint_every=CKPT_EVERY), progress=False,
                on_step=on_step, extra_loss=record)
    _write(out / phase, rank, log, res.history + [{"resumed_from": res.resumed_from}], dict(m.named_parameters()))


def run_fsdp(out: Path) -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    rank, world = dist.get_rank(), dist.get_world_size()
    cfg = config(steps=3, grad_accum=1, max_grad_norm=None)
    m = model()
    for layer in m.model.layers:
        fully_shard(layer)
    fully_shard(m)  # parameters become DTensor shards; the rotary buffers stay whole on every rank
    opt = torch.optim.AdamW(m.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    d, log = data(), []
    m.train()
    for step in range(cfg.steps):
        batch = d.get_batch(step)  # (2, R) global micro-batch
        draw = augment.sample_for_step(cfg.augment, cfg.seed, step, batch.shape[0], cfg.scheme, seq_len=batch.shape[1])
        ids = batch[rank : rank + 1]
        draw.scale, draw.shift, draw.position_ids = draw.scale[rank:rank + 1], draw.shift[rank:rank + 1], draw.position_ids[rank:rank + 1]
        with hf.e2_context(m, draw, ids) as kw:
            loss = m(input_ids=ids, labels=ids, **kw).loss
            loss.backward()  # FSDP reduce-scatters the mean gradient over ranks
        opt.step()
        opt.zero_grad(set_to_none=True)
        log.append({"index": step, "g": draw.scale.tolist(), "t": draw.shift.tolist()})
    full = {n: p.full_tensor() for n, p in m.named_parameters()}  # all-gather the shards
    _write(out / "fsdp", rank, log, [], full)


def main(argv: list[str]) -> None:
    out, phases = Path(argv[0]), argv[1:]
    for phase in phases:
        if phase == "full":
            run_loop(out, "full", out / "ckpt_full", crash=False)
        elif phase == "crash":
            run_loop(out, "crash", out / "ckpt_crash", crash=True)
        elif phase == "resume":
            run_loop(out, "resume", out / "ckpt_crash", crash=False)
        elif phase == "fsdp":
            run_fsdp(out)
        else:
            raise ValueError(f"unknown phase {phase!r}; valid: full, crash, resume, fsdp")


if __name__ == "__main__":
    main(sys.argv[1:])
