"""Property and distribution tests for the E² sampler (Eq. 5-7)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from e2llm_lite.augment import SCHEMES, AugmentConfig, e2_position_ids, make_generator, max_offset, register_scheme, sample


@st.composite
def configs(draw):
    L = draw(st.integers(4, 512))
    g_max = draw(st.integers(1, 24))
    R = draw(st.integers(2, L * g_max))
    n_sink = draw(st.integers(0, min(6, R - 1)))
    per_sample = draw(st.booleans())
    return AugmentConfig(base_window=L, train_len=R, g_max=g_max, n_sink=n_sink, per_sample=per_sample)


@settings(max_examples=150, deadline=None)
@given(cfg=configs(), seed=st.integers(0, 2**31 - 1), bsz=st.integers(1, 4))
def test_e2_draw_invariants(cfg, seed, bsz):
    d = sample(cfg, seed, batch_size=bsz)
    R, L = cfg.train_len, cfg.base_window
    assert d.position_ids.shape == (bsz, R)
    m = torch.arange(R)
    for b in range(bsz):
        g, t = int(d.scale[b]), int(d.offset[b])
        assert cfg.min_scale <= g <= cfg.g_max  # g in G (and L*g >= R)
        assert 0 <= t <= L * g - R  # t in T = {0..T_max}, Eq. (7)
        # sinks unshifted, the rest shifted by t
        assert torch.equal(d.position_ids[b, : cfg.n_sink], m[: cfg.n_sink])
        assert torch.equal(d.position_ids[b, cfg.n_sink :], m[cfg.n_sink :] + t)
    # every scaled position inside the base model's trained range [0, L)
    assert float(d.scaled_positions.max()) < L
    assert float(d.scaled_positions.min()) >= 0
    if not cfg.per_sample:  # one (g, t) per iteration (Eq. 6)
        assert d.uniform_scale is not None and d.offset.unique().numel() == 1


@settings(max_examples=40, deadline=None)
@given(cfg=configs(), seed=st.integers(0, 2**31 - 1))
def test_same_seed_same_draws(cfg, seed):
    a = [sample(cfg, make_generator(seed)) for _ in range(1)]
    b = [sample(cfg, make_generator(seed)) for _ in range(1)]
    assert torch.equal(a[0].position_ids, b[0].position_ids) and torch.equal(a[0].scale, b[0].scale)
    gen1, gen2 = make_generator(seed), make_generator(seed)
    s1 = [sample(cfg, gen1).offset.item() for _ in range(5)]
    s2 = [sample(cfg, gen2).offset.item() for _ in range(5)]
    assert s1 == s2


N_DRAWS = 20000


def chi2_g():
    cfg = AugmentConfig(base_window=64, train_len=64, g_max=10)
    gen = make_generator(123)
    g = torch.cat([sample(cfg, gen, batch_size=1).scale for _ in range(N_DRAWS // 10)] +
                  [sample(AugmentConfig(64, 64, 10, per_sample=True), gen, batch_size=N_DRAWS - N_DRAWS // 10).scale])
    counts = torch.bincount(g, minlength=11)[1:]
    return chisquare(counts.numpy()).pvalue, counts


def chi2_t(g=3):
    cfg = AugmentConfig(base_window=64, train_len=32, g_max=8, fixed_scale=g, per_sample=True)
    d = sample(cfg, 7, batch_size=N_DRAWS, scheme="e2-fixed-scale")
    counts = torch.bincount(d.offset, minlength=64 * g - 32 + 1)
    return chisquare(counts.numpy()).pvalue, counts


def test_scale_is_uniform_over_G_chi_square():
    p, counts = chi2_g()
    assert counts.sum() == N_DRAWS and (counts > 0).all()
    assert p > 1e-3, f"g not uniform over G: chi-square p = {p:.2e}, counts = {counts.tolist()}"


def test_offset_is_uniform_over_T_chi_square():
    p, counts = chi2_t()
    assert counts.numel() == 64 * 3 - 32 + 1  # T = {0..L*g-R}: T_max = 160, nothing drawn past it
    assert p > 1e-3, f"t not uniform over T: chi-square p = {p:.2e}"


def test_chi_square_detects_a_biased_sampler():
    """The test above can fail: a sampler that never draws g = G_max is rejected."""
    cfg = AugmentConfig(64, 64, 10, scale_probs=[1 / 9] * 9 + [0.0], per_sample=True)
    counts = torch.bincount(sample(cfg, 0, batch_size=N_DRAWS).scale, minlength=11)[1:]
    assert counts[-1] == 0
    assert chisquare(counts.numpy()).pvalue < 1e-6


def test_custom_scale_weights():
    cfg = AugmentConfig(64, 64, 4, scale_probs=[0.0, 0.0, 1.0, 0.0], per_sample=True)
    assert sample(cfg, 0, batch_size=50).scale.unique().tolist() == [3]
    cfg = AugmentConfig(64, 64, 4, scale_probs=[0.7, 0.1, 0.1, 0.1], per_sample=True)
    share = (sample(cfg, 0, batch_size=5000).scale == 1).float().mean().item()
    assert 0.67 < share < 0.73


def test_uniform_respects_min_scale():
    # R = 3L: only g >= 3 can hold the window
    cfg = AugmentConfig(base_window=32, train_len=96, g_max=5, per_sample=True)
    assert set(sample(cfg, 1, batch_size=500).scale.tolist()) == {3, 4, 5}


def test_schemes():
    cfg = AugmentConfig(base_window=128, train_len=128, g_max=8, fixed_scale=4)
    assert set(SCHEMES) >= {"none", "pi", "e2", "e2-no-offset", "e2-fixed-scale"}
    d = sample(cfg, 0, scheme="none")
    assert d.scale.item() == 1 and d.offset.item() == 0
    d = sample(cfg, 0, scheme="pi")
    assert d.scale.item() == 4 and d.offset.item() == 0
    gen = make_generator(0)
    draws = [sample(cfg, gen, scheme="e2-no-offset") for _ in range(50)]
    assert all(d.offset.item() == 0 for d in draws) and len({d.scale.item() for d in draws}) > 3
    draws = [sample(cfg, gen, scheme="e2-fixed-scale") for _ in range(50)]
    assert all(d.scale.item() == 4 for d in draws) and len({d.offset.item() for d in draws}) > 10
    assert all(sample(AugmentConfig(128, 128, 8, offsets=False), s).offset.item() == 0 for s in range(20))
    # PI on g*L long sequences: R = 512, L = 128 -> g = 4 by default
    d = sample(AugmentConfig(base_window=128, train_len=512, g_max=4), 0, scheme="pi")
    assert d.scale.item() == 4 and torch.equal(d.position_ids[0], torch.arange(512))


def test_e2_position_ids_hand_values():
    assert e2_position_ids(8, 10, n_sink=4).tolist() == [0, 1, 2, 3, 14, 15, 16, 17]
    assert e2_position_ids(4, 5, n_sink=0).tolist() == [5, 6, 7, 8]
    assert max_offset(4096, 5, 4096) == 16384  # paper's Fig. 3 setting: T_max = L*g - R


def test_seq_len_truncates():
    d = sample(AugmentConfig(16, 16, 2), 0, seq_len=10)
    assert d.position_ids.shape == (1, 10)


def test_register_scheme():
    def pose_like(cfg, gen, bsz):
        return SCHEMES["none"](cfg, gen, bsz)

    register_scheme("test-pose-like", pose_like)
    try:
        assert sample(AugmentConfig(16, 16, 2), 0, scheme="test-pose-like").scale.item() == 1
        with pytest.raises(ValueError, match="already registered"):
            register_scheme("test-pose-like", pose_like)
    finally:
        SCHEMES.pop("test-pose-like")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(g_max=0), "g_max=0"),
        (dict(base_window=0), "base_window=0"),
        (dict(train_len=4096 * 21, g_max=20), "R=86016"),
        (dict(n_sink=4096), r"\[0, 4095\] \(below R = train_len = 4096\), got n_sink=4096"),
        (dict(n_sink=-1), "n_sink=-1"),
        (dict(g_max=3, scale_probs=[0.5, 0.2, 0.2]), "sum=0.9"),
        (dict(g_max=3, scale_probs=[0.5, 0.5]), "3 values"),
        (dict(g_max=3, scale_probs=[1.5, -0.5, 0.0]), "min=-0.5"),
        (dict(train_len=8192, g_max=3, scale_probs=[1.0, 0.0, 0.0]), "g < 2"),
        (dict(fixed_scale=0), "fixed_scale=0"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AugmentConfig(**kwargs)


def test_bad_calls():
    cfg = AugmentConfig(base_window=64, train_len=64, g_max=4)
    with pytest.raises(ValueError, match=r"sequence of 65 tokens.*R=64"):
        sample(cfg, 0, seq_len=65)
    with pytest.raises(ValueError, match="unknown scheme 'yarn'"):
        sample(cfg, 0, scheme="yarn")
    with pytest.raises(ValueError, match="batch_size"):
        sample(cfg, 0, batch_size=0)
    with pytest.raises(ValueError, match="t=-3"):
        e2_position_ids(8, -3)
    with pytest.raises(ValueError, match=r"R=512.*L\*g = 128\*2 = 256"):
        max_offset(128, 2, 512)
    with pytest.raises(ValueError, match="g=0"):
        max_offset(128, 0, 64)
    with pytest.raises(ValueError, match=r"R=256.*need R <= L\*g"):  # PI scale too small for R
        sample(AugmentConfig(base_window=64, train_len=256, g_max=8, fixed_scale=2), 0, scheme="pi")
    with pytest.raises(ValueError, match=r"R=128"):  # "none" cannot train past L
        sample(AugmentConfig(base_window=64, train_len=128, g_max=8), 0, scheme="none")
