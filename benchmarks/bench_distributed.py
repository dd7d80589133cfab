"""Throughput of the accelerate-based loop on CPU processes: 1 vs 2 processes, and vs the loop before it.

    python benchmarks/bench_distributed.py            # writes benchmarks/bench_distributed.json

1. **1 vs 2 processes** (gloo DDP via ``torchrun``, one thread each): the same tiny Llama (4 layers,
   hidden 128, byte vocabulary), the same global micro-batch (8 × 128 tokens: 8 rows in 1 process,
   4 per process in 2), E² draws, AdamW. tokens/s = all processes' tokens per optimizer step ÷ step time,
   median over the steps after 3 warm-up steps. On a 2-core machine shared with other jobs the ideal is 2×.
2. **Accelerate loop vs the loop before this change** (``git show <commit>:e2llm_lite/train/loop.py``,
   a plain-PyTorch loop): one process, one thread, same model init, data, draws scheme and optimizer;
   whole ``train()`` calls alternate old, new, old, new …; tokens per second of wall time and per
   second of CPU time (one thread) over the steps after the warm-up, from ``on_step`` time stamps.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OLD_COMMIT = "9a50065"  # the layout commit: e2llm_lite/train/loop.py before the accelerate loop

R, ROWS, WARMUP = 128, 8, 3


def _setup(steps: int, rows_per_process: int):
    import torch

    torch.set_num_threads(1)
    from e2llm_lite.augment import AugmentConfig
    from e2llm_lite.data import PackedWindows
    from e2llm_lite.models import tiny_model
    from e2llm_lite.train.loop import TrainConfig

    model = tiny_model(vocab_size=256, hidden_size=128, num_layers=4, num_heads=4, base_window=R, seed=0)
    data = PackedWindows(torch.arange(200_000) * 31 % 256, R, ROWS, seed=1)  # the global micro-batch
    cfg = TrainConfig(steps=steps, lr=1e-4, batch_size=rows_per_process, grad_accum=1, seed=0, scheme="e2",
                      augment=AugmentConfig(base_window=R, train_len=R, g_max=8, n_sink=4))
    return model, data, cfg


def worker(out: str, steps: int) -> None:
    """One process of part 1 (run directly, or by torchrun for 2 processes)."""
    from e2llm_lite.train.loop import train

    world = int(os.environ.get("WORLD_SIZE", "1"))
    model, data, cfg = _setup(steps, ROWS // world)
    marks = []
    res = train(model, data, cfg, progress=False,
                on_step=lambda s, m, rec: marks.append((time.perf_counter(), time.process_time())) and None)
    if int(os.environ.get("RANK", "0")) == 0:
        tps = [h["tokens_per_s"] for h in res.history[WARMUP:]]
        (w0, c0), (w1, c1) = marks[WARMUP - 1], marks[-1]
        tokens = ROWS * R * (len(marks) - WARMUP)  # all processes' tokens
        Path(out).write_text(json.dumps({
            "processes": world, "tokens_per_s": tokens / (w1 - w0), "tokens_per_s_step_median": statistics.median(tps),
            "tokens_per_cpu_s": tokens / ((c1 - c0) * world),  # CPU seconds of all processes (rank 0's × N)
            "steps_timed": len(tps)}))


def part1(steps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 2, 1, 2):  # alternate so drifts in machine load hit both
            out = Path(tmp) / f"p{n}.json"
            launch = [sys.executable] if n == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                       "--nproc_per_node", str(n)]
            subprocess.run(launch + [__file__, "--worker", str(out), "--steps", str(steps)], env=env, check=True,
                           capture_output=True, text=True)
            rows.setdefault(n, []).append(json.loads(out.read_text()))
    best = {n: max(r["tokens_per_s"] for r in rs) for n, rs in rows.items()}
    cpu = {n: max(r["tokens_per_cpu_s"] for r in rs) for n, rs in rows.items()}
    return {"runs": {str(n): rs for n, rs in rows.items()}, "tokens_per_s_1proc": best[1],
            "tokens_per_s_2proc": best[2], "speedup_2_vs_1": best[2] / best[1],
            "tokens_per_cpu_s_1proc": cpu[1], "tokens_per_cpu_s_2proc": cpu[2],
            "cpu_efficiency_2_vs_1": cpu[2] / cpu[1],
            "note": "best of 2 alternating runs each; the speed-up needs 2 idle cores, the CPU efficiency does not"}


def _old_train():
    src = subprocess.run(["git", "show", f"{OLD_COMMIT}:e2llm_lite/train/loop.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_loop.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_loop", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_loop"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def part2(steps: int, repeats: int) -> dict:
    """Old vs new loop in one process: per-step wall and CPU time (``time.process_time``, one thread: the
    work itself, less sensitive than wall time to other jobs taking the cores), steps after the warm-up."""
    import torch

    from e2llm_lite.train.loop import train as new_train

    old = _old_train()
    tokens = ROWS * R  # per optimizer step
    res = {name: {"wall": [], "cpu": []} for name in ("old", "new")}
    for _ in range(repeats):
        for name in ("old", "new"):
            model, data, cfg = _setup(steps, ROWS)
            marks = []
            on_step = lambda s, m, rec: marks.append((time.perf_counter(), time.process_time())) and None  # noqa: E731
            if name == "old":
                cfg = old.TrainConfig(**{k: getattr(cfg, k) for k in ("steps", "lr", "batch_size", "grad_accum", "seed",
                                                                         "scheme", "augment")})
                old.train(model, data, cfg, progress=False, on_step=on_step)
            else:
                new_train(model, data, cfg, progress=False, on_step=on_step)
            (w0, c0), (w1, c1) = marks[WARMUP - 1], marks[-1]
            n = len(marks) - WARMUP
            res[name]["wall"].append(tokens * n / (w1 - w0))
            res[name]["cpu"].append(tokens * n / (c1 - c0))
    out = {"old_commit": OLD_COMMIT, "steps_timed_per_run": steps - WARMUP, "torch_threads": torch.get_num_threads()}
    for kind in ("wall", "cpu"):
        o, n = res["old"][kind], res["new"][kind]
        pairs = [b / a for a, b in zip(o, n)]
        out[kind] = {"tokens_per_s_old": o, "tokens_per_s_new": n, "median_old": statistics.median(o),
                     "median_new": statistics.median(n), "ratio_new_over_old": statistics.median(n) / statistics.median(o),
                     "ratio_pairs": pairs, "ratio_pairs_median": statistics.median(pairs)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=23)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "bench_distributed.json"))
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.steps)
        return
    t0 = time.perf_counter()
    result = {
        "what": "tokens/s of e2llm_lite.train.loop on CPU processes (gloo DDP), and vs the pre-accelerate loop",
        "model": "tiny Llama: 4 layers, hidden 128, 4 heads, vocab 256; R = 128; global micro-batch 8; AdamW; E² draws",
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs (shared with other jobs); 1 torch thread per process",
        "python": platform.python_version(),
        "one_vs_two_processes": part1(args.steps),
        "accelerate_vs_old_loop": part2(args.steps, args.repeats),
    }
    import accelerate
    import torch

    result["versions"] = {"torch": torch.__version__, "accelerate": accelerate.__version__}
    result["elapsed_s"] = time.perf_counter() - t0
    from e2llm_lite.atomic_files import save_json

    save_json(result, args.out)
    print(json.dumps({k: result[k] for k in ("one_vs_two_processes", "accelerate_vs_old_loop")}, indent=1))


if __name__ == "__main__":
    main()
