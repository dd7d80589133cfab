r"""Measure E² fine-tuning steps of a 7B-shaped model per mode on one GPU, next to the planner's estimate.

For a GPU user (not a test; no download: the model is randomly initialised from Llama-2-7B's shape,
which is all memory and speed depend on). For each mode (full, LoRA, QLoRA) and each training length
(E² at R = 4K; PI at 16K and 32K, i.e. the run PI needs for each window) it runs a few optimizer
steps of :func:`e2llm_lite.train.loop.train` — the project's loop, bf16, gradient checkpointing, two
micro-batches per step so that gradients are alive during a forward as in a real accumulation run —
and records

* ``tokens_per_s`` (median over the timed steps, the first step is warm-up),
* ``mfu`` = tokens/s × model FLOPs per token (6·N_mm + 6·n·h·T, see planner) ÷ the GPU's peak,
* ``max_memory_allocated`` (``torch.cuda.max_memory_allocated``) vs the planner's ``total`` estimate,

into one JSON file. An out-of-memory case is recorded as ``"oom": true`` (the planner predicts which).

Usage (GPU)::

    python benchmarks/gpu_modes.py --out benchmarks/gpu_modes.json            # ~10 min on an H100
    python benchmarks/gpu_modes.py --modes lora --lens e2:4096,pi:16384,pi:32768,pi:65536

Smoke check of the script on a CPU (tiny shape, memory not measured)::

    python benchmarks/gpu_modes.py --shape tiny --device cpu --steps 2 --out /tmp/gpu_modes_cpu.json
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time

import torch

from e2llm_lite.train import loading as modes
from e2llm_lite.train import planner
from e2llm_lite.augment import AugmentConfig
from e2llm_lite.train.loop import TrainConfig, train

#: a CPU-sized shape for checking the script itself
TINY = planner.ModelShape(vocab_size=256, hidden_size=64, intermediate_size=172, num_layers=2, num_heads=4, num_kv_heads=4)


class RandomBatches:
    """``get_batch(i)``: (B, T) random token ids, a pure function of i (speed does not depend on content)."""

    def __init__(self, vocab: int, seq_len: int, batch: int) -> None:
        self.vocab, self.seq_len, self.batch = vocab, seq_len, batch

    def get_batch(self, index: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(index)
        return torch.randint(0, self.vocab, (self.batch, self.seq_len), generator=gen)


def build_model(shape: planner.ModelShape, base_window: int, device: torch.device, dtype: torch.dtype, attn: str):
    """A randomly initialised Llama of ``shape`` built directly on ``device`` in ``dtype``."""
    import transformers

    cfg = transformers.LlamaConfig(
        vocab_size=shape.vocab_size, hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers, num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads, max_position_embeddings=base_window,
        tie_word_embeddings=shape.tie_embeddings,
    )
    cfg._attn_implementation = attn
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = transformers.LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    return model


def quantize_nf4_(model, compute_dtype: torch.dtype) -> None:
    """Swap every decoder projection for a bitsandbytes NF4 ``Linear4bit`` (what QLoRA loading does)."""
    import bitsandbytes as bnb

    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, lin in list(parent.named_children()):
                if not isinstance(lin, torch.nn.Linear):
                    continue
                dev = lin.weight.device
                q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=False, compute_dtype=compute_dtype,
                                      compress_statistics=True, quant_type="nf4")
                q.weight = bnb.nn.Params4bit(lin.weight.data.to("cpu"), requires_grad=False, quant_type="nf4",
                                             compress_statistics=True)
                setattr(parent, name, q.to(dev))
                del lin
    gc.collect()


def one_case(shape, mode: str, scheme: str, seq_len: int, args, device, peak_flops: float, gpu: str | None) -> dict:
    L = args.base_window
    rec = {"mode": mode, "scheme": scheme, "seq_len": seq_len, "micro_batch": args.micro_batch}
    est = planner.estimate(shape, mode=mode, seq_len=seq_len, micro_batch=args.micro_batch,
                           global_batch=args.micro_batch * 2, gradient_checkpointing=True,
                           param_bytes=2 if device.type == "cuda" else 4, gpu=gpu or "a100-80gb")
    rec["estimate_gib"] = est.total / planner.GiB
    rec["estimate_tokens_per_s"] = est.tokens_per_s if gpu else None  # at the planner's assumed utilisation
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = opt = None
    try:
        torch.manual_seed(0)
        model = build_model(shape, L, device, dtype, args.attn or modes.pick_attn_implementation(device))
        if mode == "qlora":
            quantize_nf4_(model, dtype)
        model = modes.apply_mode(model, modes.ModeConfig(mode=mode, device=str(device)))
        if device.type == "cuda":  # measure training, not the bf16 build that QLoRA quantises away
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            rec["weights_allocated_gib"] = torch.cuda.memory_allocated(device) / planner.GiB
            rec["estimate_weights_gib"] = est.weights / planner.GiB
        opt = modes.optimizer_factory("paged_adamw8bit" if mode == "full" and device.type == "cuda" else "adamw",
                                      lr=1e-5)
        aug = AugmentConfig(base_window=L, train_len=seq_len, g_max=max(20, -(-seq_len // L)),
                            fixed_scale=-(-seq_len // L) if scheme == "pi" else None)
        cfg = TrainConfig(steps=1 + args.steps, lr=1e-5, batch_size=args.micro_batch, grad_accum=2, scheme=scheme,
                          augment=aug, gradient_checkpointing=True,
                          autocast_dtype="bfloat16" if device.type == "cuda" and mode != "full" else None)
        times = []

        def on_step(step, m, r):
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter())

        t0 = time.perf_counter()
        train(model, RandomBatches(shape.vocab_size, seq_len, args.micro_batch), cfg, optimizer_factory=opt,
              progress=False, on_step=on_step)
        steps_s = [b - a for a, b in zip([t0] + times[:-1], times)][1:]  # drop the warm-up step
        tps = 2 * args.micro_batch * seq_len / statistics.median(steps_s)
        rec.update(oom=False, tokens_per_s=tps, s_per_step=statistics.median(steps_s),
                   mfu=tps * est.model_flops_per_token / peak_flops if peak_flops else None)
        if device.type == "cuda":
            rec["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated(device) / planner.GiB
            rec["measured_over_estimate"] = rec["max_memory_allocated_gib"] / rec["estimate_gib"]
    except torch.OutOfMemoryError:
        rec.update(oom=True)
    finally:
        model = opt = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="llama-2-7b", help=f"planner preset ({', '.join(planner.PRESETS)}) or 'tiny'")
    p.add_argument("--modes", default="full,lora,qlora")
    p.add_argument("--lens", default="e2:4096,pi:16384,pi:32768", help="scheme:length pairs")
    p.add_argument("--base-window", type=int, default=4096, help="L of the base model")
    p.add_argument("--micro-batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    p.add_argument("--attn", default=None, help="sdpa | flash_attention_2 (default: flash when available)")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default="benchmarks/gpu_modes.json")
    args = p.parse_args(argv)

    device = modes.pick_device(args.device)
    shape = TINY if args.shape == "tiny" else planner.shape_of(args.shape)
    if args.shape == "tiny":
        args.base_window = min(args.base_window, 64)
    lens = []
    for item in args.lens.split(","):
        scheme, _, n = item.partition(":")
        n = int(n)
        lens.append((scheme, n if args.shape != "tiny" else max(2, n * args.base_window // 4096)))
    peak = 0.0
    gpu = None
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device).lower()
        gpu = next((k for k, key in [("h200", "h200"), ("h100-80gb", "h100"), ("a100-80gb", "a100"), ("l4", "l4")]
                    if key in name), None)
        peak = planner.GPUS[gpu][0] if gpu else 0.0
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "planner_gpu": gpu, "peak_flops": peak, "shape": args.shape, "torch": torch.__version__,
        "python": sys.version.split()[0], "cases": [],
    }
    try:
        import flash_attn  # noqa: F401

        results["flash_attn"] = getattr(flash_attn, "__version__", "yes")
    except ImportError:
        results["flash_attn"] = None
    for mode in args.modes.split(","):
        for scheme, n in lens:
            rec = one_case(shape, mode, scheme, n, args, device, peak, gpu)
            results["cases"].append(rec)
            print(json.dumps(rec), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
