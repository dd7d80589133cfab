"""e2llm_lite.train.loading: what each mode trains, QLoRA on CPU, exports (adapter, merged, linear-rope config), resume."""
import importlib.util
import json

import pytest
import torch

from e2llm_lite import hf
from e2llm_lite.train import loading as modes
from e2llm_lite.models import tiny_model
from e2llm_lite.train.loop import TrainConfig, train
from e2llm_lite.augment import AugmentConfig
from e2llm_lite.data import PackedWindows

L = 32  # tiny base window


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    tiny_model(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, vocab_size=64, base_window=L,
               seed=1).save_pretrained(d, safe_serialization=True)
    return str(d)


def _batches(seed=0):
    stream = torch.randint(0, 64, (4000,), generator=torch.Generator().manual_seed(seed))
    return PackedWindows(stream, seq_len=2 * L, batch_size=2, seed=seed)


def _tcfg(**kw):
    base = dict(steps=3, lr=5e-3, augment=AugmentConfig(base_window=L, train_len=2 * L, g_max=8), log_every=1)
    base.update(kw)
    return TrainConfig(**base)


def _cpu(mode, **kw):
    return modes.ModeConfig(mode=mode, device="cpu", **kw)


def test_lora_trains_only_adapters(tiny_dir):
    torch.manual_seed(0)
    m = modes.load_model(tiny_dir, _cpu("lora"))
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert {n.split(".")[-4] for n in names} == set(modes.ATTENTION_PROJECTIONS)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    train(m, _batches(), _tcfg(gradient_checkpointing=True), progress=False)  # as on a GPU
    for n, p in m.named_parameters():
        changed = not torch.equal(before[n], p.detach())
        assert changed == ("lora_" in n), n  # adapters move, the base stays bit-identical


def test_longlora_embed_norm_and_full(tiny_dir):
    m = modes.load_model(tiny_dir, _cpu("lora", train_embed_norm=True))
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert any("embed_tokens" in n for n in names) and any("norm" in n for n in names)
    assert not any("q_proj.base_layer" in n or "mlp" in n for n in names)
    full = modes.load_model(tiny_dir, _cpu("full"))
    assert all(p.requires_grad for p in full.parameters())
    assert full.config._attn_implementation == "sdpa"  # no flash-attn on a CPU


def test_loading_is_safetensors_only_and_no_remote_code(tiny_dir, monkeypatch):
    import transformers

    seen = {}
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(path, **kw):
        seen.update(kw)
        return real(path, **kw)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    modes.load_model(tiny_dir, _cpu("full"))
    assert seen["use_safetensors"] is True and seen["trust_remote_code"] is False
    modes.load_model(tiny_dir, _cpu("full", trust_remote_code=True))  # opt-in only
    assert seen["trust_remote_code"] is True
    assert modes.pick_attn_implementation("cpu") == "sdpa"
    with pytest.raises(ValueError, match="flash_attention_2"):
        modes.load_model(tiny_dir, _cpu("full", attn_implementation="flash_attention_2"))


@pytest.mark.parametrize("has_flash,capability,want", [
    (True, (8, 0), "flash_attention_2"), (True, (9, 0), "flash_attention_2"), (True, (7, 5), "sdpa"),
    (False, (9, 0), "sdpa"),
])
def test_attention_kernel_choice(monkeypatch, has_flash, capability, want):
    real = importlib.util.find_spec
    fake_spec = real("json")  # any spec object: "importable"
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (fake_spec if has_flash else None) if name == "flash_attn" else real(name, *a))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert modes.pick_attn_implementation("cuda") == want
    assert modes.pick_attn_implementation("cpu") == "sdpa"


def test_qlora_on_cpu_quantizes_and_trains_adapters(tiny_dir):
    torch.manual_seed(0)
    m = modes.load_model(tiny_dir, _cpu("qlora"))
    import bitsandbytes as bnb

    qs = [mod for mod in m.modules() if isinstance(mod, bnb.nn.Linear4bit)]
    assert len(qs) == 2 * 7  # every decoder projection of both layers in NF4
    assert qs[0].weight.quant_type == "nf4"
    res = train(m, _batches(), _tcfg(steps=2), progress=False)
    assert res.step == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in res.history)
    assert all("lora_" in n for n, p in m.named_parameters() if p.requires_grad)


def test_qlora_and_8bit_without_bitsandbytes_is_a_value_error(tiny_dir, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(ValueError, match="bitsandbytes"):
        modes.load_model(tiny_dir, _cpu("qlora"))
    with pytest.raises(ValueError, match="paged_adamw8bit.*bitsandbytes"):
        modes.optimizer_factory("paged_adamw8bit")


@pytest.mark.parametrize("kw,needle", [
    ({"mode": "int8"}, "'int8'"), ({"dtype": "float8"}, "'float8'"), ({"lora_r": 0}, "lora_r"),
    ({"attn_implementation": "xformers"}, "'xformers'"),
])
def test_bad_mode_config(kw, needle):
    with pytest.raises(ValueError, match="valid|must") as e:
        modes.ModeConfig(**kw)
    assert needle in str(e.value)


def test_optimizers(tiny_dir):
    with pytest.raises(ValueError, match="'sgd'.*adamw"):
        modes.optimizer_factory("sgd")
    m = modes.load_model(tiny_dir, _cpu("full"))
    opt = modes.optimizer_factory("paged_adamw8bit", lr=1e-3)(m.parameters())
    assert type(opt).__name__ == "PagedAdamW8bit" and opt.defaults["betas"] == (0.9, 0.95)
    res = train(m, _batches(), _tcfg(steps=2, lr=1e-3), optimizer_factory=modes.optimizer_factory("adamw8bit", lr=1e-3),
                progress=False)
    assert res.step == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in res.history)


def test_export_merged_equals_adapter_and_linear_rope_config(tiny_dir, tmp_path):
    import transformers

    torch.manual_seed(0)
    m = modes.load_model(tiny_dir, _cpu("lora"))
    train(m, _batches(), _tcfg(steps=3, lr=2e-2), progress=False)  # adapters away from zero
    ids = torch.randint(0, 64, (1, 4 * L), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        with hf.rope_scale(m, 4):
            ref = m(input_ids=ids).logits
        plain = m(input_ids=ids[:, :L]).logits
    out = modes.export(m, tmp_path / "exp", g=4)
    merged = out["model"]
    assert not hasattr(merged, "peft_config")
    with torch.no_grad():  # 1) merged == adapters
        torch.testing.assert_close(merged(input_ids=ids[:, :L]).logits, plain, atol=1e-5, rtol=1e-5)
    cfg = json.loads((tmp_path / "exp" / "merged-g4" / "config.json").read_text())  # 2) linear factor g
    rp = cfg.get("rope_parameters") or cfg.get("rope_scaling")
    assert rp["rope_type"] == "linear" and rp["factor"] == 4.0 and cfg["max_position_embeddings"] == 4 * L
    assert (tmp_path / "exp" / "merged-g4" / "model.safetensors").is_file()
    stock = transformers.AutoModelForCausalLM.from_pretrained(out["merged"], use_safetensors=True)  # 3) stock reload
    with torch.no_grad():
        torch.testing.assert_close(stock(input_ids=ids).logits, ref, atol=1e-4, rtol=1e-4)
        with hf.rope_scale(merged, 4):
            torch.testing.assert_close(merged(input_ids=ids).logits, ref, atol=1e-4, rtol=1e-4)
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir, use_safetensors=True)  # 4) adapter reload
    again = modes.load_adapter(base, out["adapter"])
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids[:, :L]).logits, plain, atol=1e-5, rtol=1e-5)


def test_longlora_extra_weights_survive_adapter_export(tiny_dir, tmp_path):
    import transformers

    torch.manual_seed(0)
    m = modes.load_model(tiny_dir, _cpu("lora", train_embed_norm=True))
    train(m, _batches(), _tcfg(steps=2, lr=2e-2), progress=False)
    ids = torch.randint(0, 64, (1, L), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = m(input_ids=ids).logits
    path = modes.save_adapter(m, tmp_path / "ad")
    assert (tmp_path / "ad" / modes.EXTRA_TRAINABLE).is_file()
    again = modes.load_adapter(transformers.AutoModelForCausalLM.from_pretrained(tiny_dir), path)
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids).logits, ref, atol=1e-5, rtol=1e-5)


class Interrupted(Exception):
    pass


def test_lora_resume_equals_uninterrupted(tiny_dir, tmp_path):
    """A 5-step LoRA run killed in step 3, resumed in a fresh model (other adapter init), ends bit-identical."""
    from safetensors.torch import load_file

    cfg = dict(steps=5, grad_accum=2, warmup_steps=2, schedule="cosine", checkpoint_every=1)

    def fresh(seed_init):
        torch.manual_seed(seed_init)  # a different adapter init: resume must overwrite it
        return modes.load_model(tiny_dir, _cpu("lora"))

    def trainable(m):
        return {n: p.detach().clone() for n, p in m.named_parameters() if p.requires_grad}

    m = fresh(0)
    train(m, _batches(), _tcfg(checkpoint_dir=str(tmp_path / "a"), **cfg), progress=False)
    straight = trainable(m)

    def crash(step, model, rec):  # dies after step 3's update, before its checkpoint: step 3 is lost
        if step == 3:
            raise Interrupted

    m = fresh(0)
    with pytest.raises(Interrupted):
        train(m, _batches(), _tcfg(checkpoint_dir=str(tmp_path / "b"), **cfg), progress=False, on_step=crash)
    m = fresh(123)
    res = train(m, _batches(), _tcfg(checkpoint_dir=str(tmp_path / "b"), **cfg), progress=False)
    assert res.resumed_from == 2
    resumed = trainable(m)
    assert straight.keys() == resumed.keys()
    for n in straight:
        assert torch.equal(straight[n], resumed[n]), n  # bit-identical
    saved = load_file(str(tmp_path / "b" / "last" / "trainable.safetensors"))
    assert all(torch.equal(saved[n], resumed[n]) for n in saved)


def test_full_8bit_resume_equals_uninterrupted(tiny_dir, tmp_path):
    """bitsandbytes' 8-bit AdamW state survives the checkpoint round trip too (full fine-tuning)."""

    def run(steps, ckpt):
        m = modes.load_model(tiny_dir, _cpu("full"))
        train(m, _batches(1), _tcfg(steps=steps, lr=1e-3, checkpoint_dir=str(ckpt), checkpoint_every=1),
              optimizer_factory=modes.optimizer_factory("adamw8bit", lr=1e-3), progress=False)
        return {n: p.detach().clone() for n, p in m.named_parameters()}

    straight = run(4, tmp_path / "a")
    run(2, tmp_path / "b")
    resumed = run(4, tmp_path / "b")
    assert all(torch.equal(straight[n], resumed[n]) for n in straight)


_NO_BNB_SCRIPT = r"""
import sys, tempfile
from e2llm_lite.models import tiny_model
from e2llm_lite.train import loading
m = tiny_model(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, vocab_size=64, base_window=32, seed=1)
p = loading.apply_mode(m, loading.ModeConfig(mode="lora", device="cpu"))
d = tempfile.mkdtemp()
loading.save_adapter(p, d)
base = tiny_model(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, vocab_size=64, base_window=32, seed=1)
q = loading.load_adapter(base, d, adapter_name="a")
with loading.peft_without_bitsandbytes(q):
    q.load_adapter(d, adapter_name="b")
kinds = sorted({type(x).__module__ for x in q.modules() if type(x).__name__ == "Linear" and hasattr(x, "lora_A")})
print("bitsandbytes" in sys.modules, kinds)
"""


def test_float_lora_does_not_import_bitsandbytes():
    """A float model's LoRA (create, load, load a second adapter) leaves bitsandbytes unimported: installed,
    peft would import it, and bitsandbytes >= 0.50 on an AVX512-BF16 CPU then asks the Hub for a kernel."""
    import subprocess
    import sys

    assert importlib.util.find_spec("bitsandbytes") is not None, "the test environment installs bitsandbytes"
    out = subprocess.run([sys.executable, "-c", _NO_BNB_SCRIPT], capture_output=True, text=True, check=True)
    imported, kinds = out.stdout.strip().split(" ", 1)
    assert imported == "False", out.stderr
    assert kinds == "['peft.tuners.lora.layer']"  # plain LoRA layers, as peft builds them for a float model
    assert "kernels-community" not in out.stderr


def test_quantised_model_still_goes_through_peft_bitsandbytes(tiny_dir):
    """The guard steps aside for a 4-bit model: its LoRA layers are peft's bitsandbytes ones."""
    m = modes.load_model(tiny_dir, _cpu("qlora"))  # loads in 4 bits and attaches the adapters
    kinds = {type(x).__module__ for x in m.modules() if hasattr(x, "lora_A") and hasattr(x, "base_layer")}
    assert "peft.tuners.lora.bnb" in kinds
