"""e2llm_lite.coverage: which (distance, g) pairs training shows, against hand-derived values and brute force."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from e2llm_lite import augment
from e2llm_lite import coverage as cv

# a small world where everything can be checked by hand: L = R = 16, scales 1..4, 2 sinks
L, R, G_MAX, SINKS = 16, 16, 4, 2


def small(**kw):
    args = dict(base_window=L, train_len=R, g_max=G_MAX, n_sink=SINKS)
    args.update(kw)
    return augment.AugmentConfig(**args)


def spans(cov, spec):
    """Boolean (G, D) array that is True exactly on {(d, g): lo <= d <= hi} for spec {g: (lo, hi)}."""
    want = np.zeros_like(cov.covered)
    for g, (lo, hi) in spec.items():
        want[g - 1, lo : hi + 1] = True
    return want


# --- runs and distance intervals -------------------------------------------------------------


def test_position_runs_hand_values():
    np.testing.assert_array_equal(cv.position_runs(torch.tensor([0, 1, 2, 3, 9, 10, 11])), [[0, 3], [9, 11]])
    np.testing.assert_array_equal(cv.position_runs([5]), [[5, 5]])
    np.testing.assert_array_equal(cv.position_runs(torch.arange(7)), [[0, 6]])
    with pytest.raises(ValueError, match="strictly increasing"):
        cv.position_runs([0, 2, 2])


def test_distance_intervals_hand_values():
    # R = 8, sinks {0, 1}, t = 8 (g = 2, L = 8: T_max = 8): ids 0, 1, 10..15
    ids = augment.e2_position_ids(8, 8, n_sink=2)
    assert ids.tolist() == [0, 1, 10, 11, 12, 13, 14, 15]
    # ordinary-ordinary 0..5, sink-sink 0..1, query-sink 9..15: the gap 6..8 is never seen
    np.testing.assert_array_equal(cv.distance_intervals(ids), [[0, 5], [9, 15]])
    # without sink keys only ordinary keys remain: 0..5
    np.testing.assert_array_equal(cv.distance_intervals(ids, ids[2:]), [[0, 5]])
    # t = 0: one run, distances 0..R-1
    np.testing.assert_array_equal(cv.distance_intervals(torch.arange(8)), [[0, 7]])


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 60), min_size=1, max_size=25), st.integers(0, 5))
def test_distance_intervals_equal_brute_force(id_set, drop):
    ids = np.array(sorted(id_set))
    keys = ids[min(drop, len(ids) - 1):]
    brute = sorted({int(q - k) for q in ids for k in keys if q >= k})
    got = [d for lo, hi in cv.distance_intervals(ids, keys) for d in range(lo, hi + 1)]
    assert got == brute


# --- coverage ---------------------------------------------------------------------------------


def test_coverage_none_covers_only_g1_up_to_R_minus_1():
    cov = cv.coverage(small(), "none", n_iter=20, seed=0)
    np.testing.assert_array_equal(cov.covered, spans(cov, {1: (0, R - 1)}))
    assert cov.iterations.tolist() == [20, 0, 0, 0]
    assert cov.fraction_of_needed() == pytest.approx(R / (L * sum(range(1, G_MAX + 1))))


def test_coverage_pi_covers_one_scale_up_to_R_minus_1():
    cov = cv.coverage(small(fixed_scale=3), "pi", n_iter=20, seed=0)
    np.testing.assert_array_equal(cov.covered, spans(cov, {3: (0, R - 1)}))
    # PI trained on the long window (R = L*g) fills its one row, nothing else
    long = cv.coverage(small(train_len=3 * L, fixed_scale=3), "pi", n_iter=5, seed=0)
    np.testing.assert_array_equal(long.covered, spans(long, {3: (0, 3 * L - 1)}))


def test_coverage_e2_reaches_L_g_minus_1_through_sinks_only():
    cov = cv.coverage(small(), "e2", n_iter=600, seed=1)
    assert cov.iterations.sum() == 600 and (cov.iterations > 0).all()
    for g in range(1, G_MAX + 1):
        assert cov.max_distance(g) == L * g - 1, g  # the whole window inference at g needs
    np.testing.assert_array_equal(cov.covered, cov.needed)  # everything needed, nothing more
    assert cov.fraction_of_needed() == 1.0
    # distance 0 (a token with itself) is in every iteration
    np.testing.assert_array_equal(cov.counts[:, 0], cov.iterations)

    no_sink_keys = cv.coverage(small(), "e2", n_iter=600, seed=1, exclude_sink_keys=True)
    assert [no_sink_keys.max_distance(g) for g in range(1, G_MAX + 1)] == [R - 1 - SINKS] * G_MAX

    # no sinks: the offset is a pure shift (Eq. 2), coverage is that of "no offset"
    plain = cv.coverage(small(n_sink=0), "e2", n_iter=200, seed=1)
    no_offset = cv.coverage(small(n_sink=0), "e2-no-offset", n_iter=200, seed=1)
    want = spans(plain, {g: (0, R - 1) for g in range(1, G_MAX + 1)})
    np.testing.assert_array_equal(plain.covered, want)
    np.testing.assert_array_equal(no_offset.covered, want)


def test_coverage_counts_equal_brute_force_over_the_same_draws():
    cfg = small(base_window=8, train_len=8, g_max=3)
    n_iter = 40
    cov = cv.coverage(cfg, "e2", n_iter=n_iter, seed=7)
    want = np.zeros_like(cov.counts)
    gen = augment.make_generator(7)
    for _ in range(n_iter):
        d = augment.sample(cfg, gen)
        ids = d.position_ids[0]
        seen = {int(q - k) for q in ids for k in ids if q >= k}
        for dist in seen:
            want[int(d.scale[0]) - 1, dist] += 1
    np.testing.assert_array_equal(cov.counts, want)
    # pure: same arguments, same arrays
    np.testing.assert_array_equal(cv.coverage(cfg, "e2", n_iter=n_iter, seed=7).counts, cov.counts)


def test_coverage_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_iter"):
        cv.coverage(small(), "e2", n_iter=0)
    with pytest.raises(ValueError, match="g_max"):
        cv.coverage(small(), "e2", n_iter=50, g_max=2)  # draws g up to 4
    with pytest.raises(ValueError, match="unknown scheme"):
        cv.coverage(small(), "yarn", n_iter=5)


def test_bin_coverage_hand_values():
    cov = cv.coverage(small(), "none", n_iter=1, seed=0)  # row g=1 covers 0..15 of D = 64
    b = cv.bin_coverage(cov, 10)  # bins [0,10) [10,20) ... [60,64)
    assert b.shape == (G_MAX, 7)
    np.testing.assert_allclose(b[0], [1.0, 0.6, 0, 0, 0, 0, 0])
    assert not b[1:].any()
    with pytest.raises(ValueError, match="bin_width"):
        cv.bin_coverage(cov, 0)
