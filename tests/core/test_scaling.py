"""RoPE scale families (linear, ntk, yarn): the pure functions against transformers' own RoPE code and
hand-derived values, and the hook against models that stock transformers builds for each rope_type."""
import math

import pytest
import torch
import transformers
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from e2llm_lite.augment import AugmentConfig, sample
from e2llm_lite.hf import current_family, current_scale, e2_context, e2_forward, rope_scale, rotary_modules, save_for_scale
from e2llm_lite.models import tiny_model
from e2llm_lite.rope import inv_freq
from e2llm_lite.scaling import (
    FAMILIES,
    Family,
    RopeBase,
    get_family,
    hf_rope_parameters,
    linear,
    ntk_theta,
    plot_stretch,
    register_family,
    scale_frequencies,
    stretch,
    yarn_attention_factor,
)

L = 32  # base window of the tiny models
GS = (1, 2, 4, 8)
ARCHS = ("llama", "qwen2", "phi")  # phi: partial rotary (half of each head rotated)


# --- the pure functions -----------------------------------------------------------------------


@pytest.mark.parametrize("d,theta,window", [(16, 1e4, 32), (32, 1e4, 256), (64, 1e5, 8192), (128, 5e5, 4096)])
@pytest.mark.parametrize("g", [2, 3, 4, 8, 16])
def test_families_equal_transformers_init_functions_bit_for_bit(d, theta, window, g):
    base = RopeBase(theta, d, window)
    lin, a_lin = ROPE_INIT_FUNCTIONS["linear"](transformers.LlamaConfig(
        hidden_size=2 * d, num_attention_heads=2, head_dim=d,
        rope_parameters={"rope_type": "linear", "factor": float(g), "rope_theta": theta}))
    yarn_cfg = transformers.LlamaConfig(
        hidden_size=2 * d, num_attention_heads=2, head_dim=d, max_position_embeddings=g * window,
        rope_parameters={"rope_type": "yarn", "factor": float(g), "original_max_position_embeddings": window,
                         "rope_theta": theta})
    yarn, a_yarn = ROPE_INIT_FUNCTIONS["yarn"](yarn_cfg)
    # transformers' NTK ("dynamic"): base * (factor*s/L - (factor-1))^(d/(d-2)); with factor 1 at s = g*L
    dyn_cfg = transformers.LlamaConfig(
        hidden_size=2 * d, num_attention_heads=2, head_dim=d, max_position_embeddings=window,
        rope_parameters={"rope_type": "dynamic", "factor": 1.0, "rope_theta": theta})
    ntk, a_ntk = ROPE_INIT_FUNCTIONS["dynamic"](dyn_cfg, seq_len=g * window)
    for fam, ref, att in (("linear", lin, a_lin), ("yarn", yarn, a_yarn), ("ntk", ntk, a_ntk)):
        out = scale_frequencies(base, g, fam)
        assert torch.equal(out.inv_freq, ref), fam
        assert out.attention_scaling == att, fam


@pytest.mark.parametrize("family", list(FAMILIES))
def test_g_one_is_the_identity(family):
    base = RopeBase(1e4, 32, 256)
    out = scale_frequencies(base, 1, family)
    assert torch.equal(out.inv_freq, inv_freq(32, 1e4)) and out.attention_scaling == 1.0
    assert torch.equal(stretch(base, 1, family), torch.ones(16))


@pytest.mark.parametrize("g", [2, 4, 16])
def test_hand_derived_stretch_per_pair(g):
    d, theta, window = 32, 1e4, 256
    base = RopeBase(theta, d, window)
    j = torch.arange(d // 2, dtype=torch.float64)
    # linear: every pair g times slower (Eq. 4)
    torch.testing.assert_close(stretch(base, g, "linear"), torch.full((d // 2,), float(g)))
    # ntk: b' = b g^{d/(d-2)}  =>  theta_j / theta_j' = g^{2j/(d-2)}: fastest kept, slowest exactly g
    assert ntk_theta(theta, g, d) == pytest.approx(theta * g ** (32 / 30))
    torch.testing.assert_close(stretch(base, g, "ntk").double(), g ** (2 * j / (d - 2)), rtol=1e-5, atol=0)
    # yarn: pairs turning >= beta_fast = 32 times in L are kept exactly; <= beta_slow = 1 time: PI
    turns = window / (2 * math.pi * theta ** (2 * j / d))  # r_j = L / lambda_j
    s = stretch(base, g, "yarn")
    assert torch.equal(s[turns >= 32], torch.ones(int((turns >= 32).sum())))
    torch.testing.assert_close(s[turns <= 1], torch.full((int((turns <= 1).sum()),), float(g)))
    assert (turns >= 32).any() and (turns <= 1).any()
    assert bool((s[1:] >= s[:-1]).all())  # monotone: slower pairs are stretched more
    # YaRN's sqrt(1/t) = 0.1 ln g + 1 (arXiv 2309.00071, Eq. 22)
    assert scale_frequencies(base, g, "yarn").attention_scaling == pytest.approx(0.1 * math.log(g) + 1)
    assert yarn_attention_factor(math.e) == pytest.approx(1.1)


def test_bad_inputs_name_the_value():
    base = RopeBase(1e4, 32, 256)
    with pytest.raises(ValueError, match="unknown RoPE scale family 'pose'.*linear, ntk, yarn"):
        scale_frequencies(base, 2, "pose")
    for g in (0.5, float("nan"), True):
        with pytest.raises(ValueError, match="scale g must be"):
            scale_frequencies(base, g, "yarn")
    with pytest.raises(ValueError, match="rotary_dim d must be an even integer >= 4, got rotary_dim=7"):
        RopeBase(1e4, 7, 256)
    with pytest.raises(ValueError, match="beta_fast > beta_slow"):
        RopeBase(1e4, 32, 256, beta_fast=1.0, beta_slow=2.0)
    with pytest.raises(ValueError, match="base_window"):
        RopeBase(1e4, 32, 0)


def test_hf_rope_parameters():
    base = RopeBase(1e4, 32, 256)
    assert hf_rope_parameters(base, 4, "linear") == {"rope_type": "linear", "factor": 4.0}
    assert hf_rope_parameters(base, 4, "yarn") == {
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256, "beta_fast": 32.0, "beta_slow": 1.0}
    assert hf_rope_parameters(base, 4, "ntk") == {"rope_type": "default", "rope_theta": 1e4 * 4 ** (32 / 30)}
    assert hf_rope_parameters(base, 1, "yarn") == {"rope_type": "default"}


def test_each_family_is_one_registry_entry():
    """Label, frequencies and stock-transformers export live on the family's object; hf_rope_parameters and
    scale_frequencies dispatch to it."""
    base = RopeBase(1e4, 32, 256)
    assert {n: f.label for n, f in FAMILIES.items()} == {"linear": "PI", "ntk": "NTK", "yarn": "YaRN"}
    assert {n: f.needs_default_rope for n, f in FAMILIES.items()} == {"linear": False, "ntk": True, "yarn": True}
    for name, fam in FAMILIES.items():
        assert fam.name == name and get_family(name) is fam and fam.description and "\n" not in fam.description
        for g in (1, 4):
            assert hf_rope_parameters(base, g, name) == fam.export(base, g)
            assert torch.equal(scale_frequencies(base, g, name).inv_freq, fam(base, g).inv_freq)
    assert hf_rope_parameters(base, 1, "linear") == {"rope_type": "linear", "factor": 1.0}
    assert hf_rope_parameters(base, 1, "ntk") == {"rope_type": "default"}


def test_a_registered_family_exports_its_own_parameters_never_yarn():
    """A family the module's own code does not name goes through its own export (the old fallback wrote YaRN),
    and an unregistered name is an error with the valid ones."""
    fam = register_family(Family("test-half", "half", lambda b, g: linear(b, 2 * g),
                                 lambda b, g: {"rope_type": "linear", "factor": 2.0 * g}, "PI at twice the scale"))
    base = RopeBase(1e4, 32, 256)
    try:
        assert hf_rope_parameters(base, 3, "test-half") == {"rope_type": "linear", "factor": 6.0}
        torch.testing.assert_close(scale_frequencies(base, 3, "test-half").inv_freq, base.frequencies() / 6, rtol=0, atol=0)
        with pytest.raises(ValueError, match="'test-half' is already registered"):
            register_family(fam)
    finally:
        FAMILIES.pop("test-half")
    with pytest.raises(ValueError, match="unknown RoPE scale family 'test-half'; valid families: linear, ntk, yarn"):
        hf_rope_parameters(base, 3, "test-half")


@pytest.mark.parametrize("make,error,match", [
    (lambda: register_family(linear), TypeError, "register_family takes a Family"),
    (lambda: Family("Bad Name", "x", linear, lambda b, g: {}, "d"), ValueError, "Family.name must be"),
    (lambda: Family("x", "", linear, lambda b, g: {}, "d"), ValueError, "label must be one non-empty line"),
    (lambda: Family("x", "X", linear, {"rope_type": "linear"}, "d"), TypeError, "export must be callable"),
    (lambda: Family("x", "X", linear, lambda b, g: {}, "two\nlines"), ValueError, "description must be one"),
    (lambda: Family("x", "X", linear, lambda b, g: {}, "d", needs_default_rope=1), TypeError, "needs_default_rope"),
])
def test_a_malformed_family_is_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()
    assert "x" not in FAMILIES


def test_plot_stretch_draws_one_line_per_family():
    import matplotlib

    matplotlib.use("Agg")
    fig, ax = plot_stretch(RopeBase(1e4, 32, 256), 4, families=["linear", "yarn"])
    lines = {ln.get_label(): ln.get_ydata() for ln in ax.lines}
    assert list(lines["linear"]) == [4.0] * 16 and lines["yarn"][0] == 1.0
    assert ax.get_xscale() == "log" and tuple(fig.get_size_inches()) == (8.0, 3.4)


# --- the hook against stock transformers --------------------------------------------------------


def tiny(arch, seed=0, **kw):
    """Tiny random model: Llama / Qwen2 from models.tiny_model, Phi (partial rotary 0.5) built directly."""
    if arch != "phi":
        return tiny_model(arch, seed=seed, base_window=L, hidden_size=64, num_heads=2, **kw)
    rp = kw.pop("rope_parameters", {"rope_type": "default", "rope_theta": 10000.0})
    cfg = transformers.PhiConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=2, max_position_embeddings=L,
                                 rope_parameters={**rp, "partial_rotary_factor": 0.5}, **kw)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    return transformers.PhiForCausalLM(cfg).eval()


def stock(model, rope_parameters, **cfg_kw):
    """The same weights in a model that transformers builds from ``rope_parameters`` (hand-written here)."""
    d = model.config.to_dict()
    d["rope_parameters"] = {**model.config.rope_parameters, **rope_parameters}
    d.update(cfg_kw)
    cfg = model.config.__class__.from_dict(d)
    cfg._attn_implementation = "sdpa"
    ref = type(model)(cfg).eval()
    ref.load_state_dict(model.state_dict())
    return ref


def reference_parameters(family, g):
    """What a user would write for transformers — independent of scaling.hf_rope_parameters."""
    if family == "linear":
        return {"rope_type": "linear", "factor": float(g)}, {}
    if family == "yarn":
        return {"rope_type": "yarn", "factor": float(g), "original_max_position_embeddings": L}, \
            {"max_position_embeddings": g * L}
    return {"rope_type": "dynamic", "factor": 1.0}, {}  # NTK at seq_len = g*L (the input length below)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("family", list(FAMILIES))
@torch.inference_mode()
def test_hook_equals_stock_rope_type_and_reload(arch, family, tmp_path):
    model = tiny(arch)
    for g in GS:
        ids = torch.randint(0, 256, (1, g * L), generator=torch.Generator().manual_seed(g))
        with rope_scale(model, g, family=family):
            assert current_scale(model) == g and current_family(model) == (family if g > 1 else "linear")
            hooked = model(ids).logits
        params, cfg_kw = reference_parameters(family, g)
        ref = stock(model, params, **cfg_kw)(ids).logits
        tol = 1e-4 if family == "ntk" else 1e-6  # dynamic NTK recomputes its base in float32 at run time
        torch.testing.assert_close(hooked, ref, atol=tol, rtol=0, msg=f"{arch} {family} g={g}")
        if g > 1:
            plain = model(ids).logits
            assert (plain - hooked).abs().max() > 1e-4  # the scale really acts
        save_for_scale(model, tmp_path / f"g{g}", g, family=family)
        saved = transformers.AutoConfig.from_pretrained(tmp_path / f"g{g}")
        assert saved.max_position_embeddings == g * L
        if g > 1:
            assert saved.rope_parameters["rope_type"] == {"linear": "linear", "ntk": "default", "yarn": "yarn"}[family]
        if family == "yarn" and g > 1:
            assert saved.rope_parameters["factor"] == g and saved.rope_parameters["original_max_position_embeddings"] == L
        reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / f"g{g}", attn_implementation="sdpa")
        torch.testing.assert_close(reloaded.eval()(ids).logits, hooked, atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", ["ntk", "yarn"])
@torch.inference_mode()
def test_restore_is_bit_exact_nested_and_on_exceptions(family):
    model = tiny("phi")
    mods = rotary_modules(model)
    before = [(m.inv_freq.clone(), m.attention_scaling) for m in mods]
    ids = torch.randint(0, 256, (1, 4 * L), generator=torch.Generator().manual_seed(0))
    plain = model(ids).logits
    with rope_scale(model, 4, family=family):
        four = mods[0].inv_freq.clone(), mods[0].attention_scaling
    with rope_scale(model, 2, family=family):
        with rope_scale(model, 2, family=family):  # nesting composes within a family: 2 x 2 = 4
            assert current_scale(model) == 4.0
            assert torch.equal(mods[0].inv_freq, four[0]) and mods[0].attention_scaling == four[1]
            with rope_scale(model, 1):  # g = 1 nests anywhere, changing nothing
                assert torch.equal(mods[0].inv_freq, four[0]) and current_family(model) == family
        assert current_scale(model) == 2.0 and current_family(model) == family
        with pytest.raises(ValueError, match="cannot nest rope_scale\\(family='linear'\\) inside"):
            with rope_scale(model, 2):
                pass
    if family == "yarn":
        assert four[1] == pytest.approx(1 + 0.1 * math.log(4))
    with pytest.raises(RuntimeError, match="boom"):
        with rope_scale(model, 8, family=family):
            raise RuntimeError("boom")
    assert current_scale(model) == 1.0 and current_family(model) == "linear"
    for m, (f, a) in zip(mods, before):
        assert torch.equal(m.inv_freq, f) and m.attention_scaling == a
    assert not model._forward_pre_hooks
    torch.testing.assert_close(model(ids).logits, plain, rtol=0, atol=0)


@torch.inference_mode()
def test_e2_step_with_a_family_equals_stock_model_at_offset_positions():
    """One training draw (g, t with sinks) under family yarn == stock yarn at factor g fed ids m + t."""
    model = tiny("llama")
    cfg = AugmentConfig(L, L, 8, fixed_scale=4, family="yarn")
    draw = sample(cfg, 1, batch_size=2, scheme="e2-fixed-scale")
    assert draw.family == "yarn" and draw.base_window == L and int(draw.shift[0]) > 0
    ids = torch.randint(0, 256, (2, L), generator=torch.Generator().manual_seed(1))
    out = e2_forward(model, ids, draw).logits
    params, kw = reference_parameters("yarn", 4)
    ref = stock(model, params, **kw)(input_ids=ids, position_ids=draw.position_ids,
                                     attention_mask=torch.ones_like(ids)).logits
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    linear = e2_forward(model, ids, draw, family="linear").logits  # the override changes the result
    assert (linear - out).abs().max() > 1e-4


def test_family_leaves_the_draw_unchanged():
    for per_sample in (False,):
        a = sample(AugmentConfig(64, 64, 16, per_sample=per_sample), 5, batch_size=3)
        for fam in FAMILIES:
            b = sample(AugmentConfig(64, 64, 16, per_sample=per_sample, family=fam), 5, batch_size=3)
            c = sample(AugmentConfig(64, 64, 16, per_sample=per_sample), 5, batch_size=3, family=fam)
            for d in (b, c):
                assert d.family == fam
                assert torch.equal(a.scale, d.scale) and torch.equal(a.shift, d.shift)
                assert torch.equal(a.position_ids, d.position_ids)


def test_per_sample_with_a_non_linear_family_raises():
    with pytest.raises(ValueError, match="per_sample=True needs family='linear'.*got family='yarn'"):
        AugmentConfig(64, 64, 16, per_sample=True, family="yarn")
    with pytest.raises(ValueError, match="per-sample draws need family='linear', got family='ntk'"):
        sample(AugmentConfig(64, 64, 16, per_sample=True), 0, batch_size=2, family="ntk")
    with pytest.raises(ValueError, match="unknown RoPE scale family 'YaRN'"):
        AugmentConfig(64, 64, 16, family="YaRN")
    model = tiny("llama")
    draw = sample(AugmentConfig(L, L, 8, per_sample=True), 3, batch_size=3)
    assert draw.uniform_scale is None
    ids = torch.zeros(3, L, dtype=torch.long)
    with pytest.raises(ValueError, match=r"per-sample draws \(g = \[.*\] differ across rows\).*family 'ntk'"):
        e2_forward(model, ids, draw, family="ntk")
    e2_forward(model, ids, draw)  # linear per-sample still works


def test_ntk_and_yarn_need_a_default_rope_base(tmp_path):
    model = tiny("llama", rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})
    for fam in ("ntk", "yarn"):
        with pytest.raises(ValueError, match="need a base model with rope_type='default', got rope_type='linear'"):
            with rope_scale(model, 2, family=fam):
                pass
        with pytest.raises(ValueError, match="rope_type='default'"):
            save_for_scale(model, tmp_path, 2, family=fam)
    with pytest.raises(ValueError, match="unknown RoPE scale family"):
        with rope_scale(model, 2, family="dynamic"):
            pass
