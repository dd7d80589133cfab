"""Data-parallel E² on this CPU: 2 processes (torchrun, gloo), layouts, configs and their errors.

Two torchrun launches of ``dist_worker.py`` (each ~10-25 s on a shared 2-core machine, mostly imports):
``full crash`` then ``resume fsdp``. The 1-process references run in this process.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from e2llm_lite import augment
from e2llm_lite.train.distributed import (PAPER_HPARAMS, PAPER_LAYOUTS, check_draw_semantics, check_engine,
                                          layout_memory, plan_layout, shards_weights)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONFIGS = ROOT / "configs" / "accelerate"
sys.path.insert(0, str(HERE))
import dist_worker as W  # noqa: E402

#: |Δweight| allowed between 2 DDP processes and 1 process on the same global batch: the same sums in
#: another order (float32 rounding, ~1e-7 relative), through 6 AdamW steps that move weights ~1e-2.
TOL = 1e-5


def _launch(out: Path, *phases: str, expect_ok: bool = True) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "dist_worker.py"), str(out), *phases]
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired as e:  # show where it hung
        raise AssertionError(f"{phases}: no result in 180 s\n{str(e.stderr)[-3000:]}") from None
    log = p.stdout + p.stderr
    assert (p.returncode == 0) == expect_ok, f"{phases}: exit {p.returncode}\n{log[-3000:]}"
    return log


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    _launch(out, "full", "crash", expect_ok=False)  # the crash phase kills rank 1 -> torchrun fails the job
    _launch(out, "resume", "fsdp")
    return out


def _json(out, phase, rank):
    return json.loads((out / phase / f"rank{rank}.json").read_text())


def _weights(out, phase):
    from safetensors.torch import load_file

    return load_file(str(out / phase / "weights.safetensors"))


def test_a_same_draw_on_both_ranks_every_micro_batch(runs):
    r0, r1 = _json(runs, "full", 0), _json(runs, "full", 1)
    cfg = W.config()
    assert len(r0["draws"]) == W.STEPS * cfg.grad_accum
    for a, b in zip(r0["draws"], r1["draws"]):
        assert a["index"] == b["index"] and a["g"] == b["g"] and a["t"] == b["t"] and a["pos0"] == b["pos0"]
        assert a["tokens"] != b["tokens"]  # ... on different rows of the global batch
        step, micro = divmod(a["index"], cfg.grad_accum)
        d = augment.sample_for_step(cfg.augment, cfg.seed, step, 2, cfg.scheme)
        assert a["g"] == [int(d.scale[0])] and a["t"] == [int(d.shift[0])]
    assert len({tuple(x["g"]) for x in r0["draws"]}) > 1  # the draws do change across steps
    assert [h["loss"] for h in r0["history"][:-1]] == [h["loss"] for h in r1["history"][:-1]]


def test_b_two_processes_equal_one_process_with_the_global_batch(runs):
    m = W.model()
    ref = W.train(m, W.data(), W.config(batch_size=2), progress=False)  # 1 process, micro-batch 2
    got = _weights(runs, "full")
    diff = max((got[n] - p.detach()).abs().max().item() for n, p in m.named_parameters())
    moved = max((p.detach() - p0.detach()).abs().max().item() for p, p0 in zip(m.parameters(), W.model().parameters()))
    assert diff <= TOL < moved / 100, (diff, moved)
    r0 = _json(runs, "full", 0)["history"][:-1]
    assert [(h["g"], h["t"]) for h in r0] == [(h["g"], h["t"]) for h in ref.history]
    assert [h["loss"] for h in r0] == pytest.approx([h["loss"] for h in ref.history], rel=1e-5)


def test_c_fsdp2_shards_train_like_one_process(runs):
    """torch FSDP2 on gloo runs the E² hook on sharded parameters (accelerate builds FSDP only on GPUs)."""
    m = W.model()
    W.train(m, W.data(), W.config(batch_size=2, steps=3, grad_accum=1, max_grad_norm=None), progress=False)
    got = _weights(runs, "fsdp")
    diff = max((got[n] - p.detach()).abs().max().item() for n, p in m.named_parameters())
    assert diff <= TOL, diff
    assert _json(runs, "fsdp", 0)["draws"] == _json(runs, "fsdp", 1)["draws"]


def test_d_killed_run_resumes_under_two_processes_bit_identical(runs):
    res = _json(runs, "resume", 0)
    assert res["history"][-1] == {"resumed_from": 3}  # checkpoint at step 3, killed after step 4
    assert not (runs / "crash" / "weights.safetensors").exists()  # the killed launch never finished
    a, b = _weights(runs, "full"), _weights(runs, "resume")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = lambda hist: [{k: v for k, v in h.items() if k != "tokens_per_s"} for h in hist[:-1]]  # noqa: E731
    assert drop(res["history"]) == drop(_json(runs, "full", 0)["history"])


# --- layouts, configs and bad input (in-process) -------------------------------------------------


def test_paper_layouts_make_global_batch_16():
    assert {k: (v.per_device, v.grad_accum, v.num_processes) for k, v in PAPER_LAYOUTS.items()} == {
        "1gpu": (1, 16, 1), "8gpu": (1, 2, 8), "16gpu": (1, 1, 16)}
    assert all(v.global_batch == PAPER_HPARAMS["global_batch"] for v in PAPER_LAYOUTS.values())
    assert plan_layout(16, 4, per_device=2).grad_accum == 2


@pytest.mark.parametrize("kw, match", [
    (dict(global_batch=16, num_processes=3), r"global_batch=16 is not divisible by .* 1 × 3 = 3"),
    (dict(global_batch=16, num_processes=8, per_device=4), r"valid per_device values are \[1, 2\]"),
    (dict(global_batch=16, num_processes=16, num_machines=3), "num_machines=3"),
    (dict(global_batch=0, num_processes=1), "global_batch"),
])
def test_plan_layout_rejects_what_does_not_divide(kw, match):
    with pytest.raises(ValueError, match=match):
        plan_layout(**kw)


def test_per_sample_with_one_row_per_rank_is_not_per_iteration():
    with pytest.raises(ValueError, match=r"per_device=1 on num_processes=16 .* \(one per process\)"):
        check_draw_semantics(per_sample=True, per_device=1, num_processes=16, draw_per="iteration")
    with pytest.raises(ValueError, match="per_sample=False"):
        check_draw_semantics(per_sample=False, per_device=1, num_processes=2, draw_per="sample")
    check_draw_semantics(per_sample=True, per_device=1, num_processes=16, draw_per=None)  # no request: fine
    cfg = W.config(augment=augment.AugmentConfig(base_window=16, train_len=16, g_max=4, per_sample=True))
    with pytest.raises(ValueError, match="draw_per='iteration'"):
        W.train(W.model(), W.data(1), cfg, progress=False)


def test_fsdp_or_deepspeed_on_a_cpu_machine_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="FSDP was requested .*ACCELERATE_USE_FSDP=true"):
        check_engine(env={"ACCELERATE_USE_FSDP": "true"}, gpu_available=False)
    with pytest.raises(ValueError, match="DeepSpeed was requested"):
        check_engine(env={"ACCELERATE_USE_DEEPSPEED": "true"}, gpu_available=False)
    check_engine(env={"ACCELERATE_USE_FSDP": "true"}, gpu_available=True)
    assert shards_weights({"ACCELERATE_USE_FSDP": "true"})
    assert shards_weights({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"})
    assert not shards_weights({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"})
    if not torch.cuda.is_available():  # the loop refuses before accelerate silently falls back to DDP
        monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
        with pytest.raises(ValueError, match="no GPU"):
            W.train(W.model(), W.data(), W.config(steps=1, batch_size=2), progress=False)


def _yaml(name):
    import yaml

    return yaml.safe_load((CONFIGS / name).read_text())


@pytest.mark.parametrize("name, dtype, stage", [("deepspeed_zero2.yaml", "DEEPSPEED", 2),
                                                ("deepspeed_zero3.yaml", "DEEPSPEED", 3)])
def test_deepspeed_configs_build_accelerate_plugins(name, dtype, stage):
    from accelerate.utils import DeepSpeedPlugin

    c = _yaml(name)
    ds = c["deepspeed_config"]
    assert c["distributed_type"] == dtype and ds["zero_stage"] == stage and c["mixed_precision"] == "bf16"
    plugin = DeepSpeedPlugin(zero_stage=ds["zero_stage"], gradient_clipping=ds["gradient_clipping"],
                             offload_optimizer_device=ds["offload_optimizer_device"],
                             offload_param_device=ds["offload_param_device"], zero3_init_flag=ds["zero3_init_flag"])
    z = plugin.deepspeed_config["zero_optimization"]
    assert z["stage"] == stage and plugin.deepspeed_config["gradient_clipping"] == 1.0
    assert ds["gradient_accumulation_steps"] == plan_layout(16, c["num_processes"]).grad_accum == 2


def test_fsdp_and_ddp_configs_are_launchable_shapes():
    from accelerate.utils import FullyShardedDataParallelPlugin

    f = _yaml("fsdp.yaml")
    assert f["distributed_type"] == "FSDP" and f["fsdp_config"]["fsdp_version"] == 2
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2, reshard_after_forward=f["fsdp_config"]["fsdp_reshard_after_forward"],
        auto_wrap_policy=f["fsdp_config"]["fsdp_auto_wrap_policy"],
        transformer_cls_names_to_wrap=f["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"],
        state_dict_type=f["fsdp_config"]["fsdp_state_dict_type"])
    assert plugin.state_dict_type.name == "SHARDED_STATE_DICT"
    for name, n in (("ddp.yaml", 8), ("fsdp.yaml", 8), ("ddp_cpu.yaml", 2)):
        c = _yaml(name)
        assert c["num_processes"] == n and c["distributed_type"] in ("MULTI_GPU", "FSDP")


def test_planner_shards_per_gpu_memory():
    lay = PAPER_LAYOUTS["16gpu"]
    rows = {s: layout_memory("llama-2-7b", lay, s, mode="full", optimizer="adamw") for s in ("ddp", "zero2", "zero3", "fsdp")}
    ddp, z2, z3 = rows["ddp"], rows["zero2"], rows["zero3"]
    assert z2["weights"] == ddp["weights"] and z2["optimizer"] == -(-ddp["optimizer"] // 16)
    assert z2["gradients"] == -(-ddp["gradients"] // 16) and z3["weights"] < ddp["weights"] / 8
    assert rows["fsdp"]["total"] == z3["total"] < z2["total"] < ddp["total"]
    assert ddp["activations"] == z3["activations"]  # micro-batch 1 everywhere
