"""e2llm_lite.pictures: the coverage computation against hand-derived values and brute force; the plot
helpers return fixed-size figures and write PNG + JSON."""
import json
import os
import pathlib

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from e2llm_lite import augment, rope  # noqa: E402
from e2llm_lite import pictures

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
    np.testing.assert_array_equal(pictures.position_runs(torch.tensor([0, 1, 2, 3, 9, 10, 11])), [[0, 3], [9, 11]])
    np.testing.assert_array_equal(pictures.position_runs([5]), [[5, 5]])
    np.testing.assert_array_equal(pictures.position_runs(torch.arange(7)), [[0, 6]])
    with pytest.raises(ValueError, match="strictly increasing"):
        pictures.position_runs([0, 2, 2])


def test_distance_intervals_hand_values():
    # R = 8, sinks {0, 1}, t = 8 (g = 2, L = 8: T_max = 8): ids 0, 1, 10..15
    ids = augment.e2_position_ids(8, 8, n_sink=2)
    assert ids.tolist() == [0, 1, 10, 11, 12, 13, 14, 15]
    # ordinary-ordinary 0..5, sink-sink 0..1, query-sink 9..15: the gap 6..8 is never seen
    np.testing.assert_array_equal(pictures.distance_intervals(ids), [[0, 5], [9, 15]])
    # without sink keys only ordinary keys remain: 0..5
    np.testing.assert_array_equal(pictures.distance_intervals(ids, ids[2:]), [[0, 5]])
    # t = 0: one run, distances 0..R-1
    np.testing.assert_array_equal(pictures.distance_intervals(torch.arange(8)), [[0, 7]])


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 60), min_size=1, max_size=25), st.integers(0, 5))
def test_distance_intervals_equal_brute_force(id_set, drop):
    ids = np.array(sorted(id_set))
    keys = ids[min(drop, len(ids) - 1):]
    brute = sorted({int(q - k) for q in ids for k in keys if q >= k})
    got = [d for lo, hi in pictures.distance_intervals(ids, keys) for d in range(lo, hi + 1)]
    assert got == brute


# --- coverage ---------------------------------------------------------------------------------


def test_coverage_none_covers_only_g1_up_to_R_minus_1():
    cov = pictures.coverage(small(), "none", n_iter=20, seed=0)
    np.testing.assert_array_equal(cov.covered, spans(cov, {1: (0, R - 1)}))
    assert cov.iterations.tolist() == [20, 0, 0, 0]
    assert cov.fraction_of_needed() == pytest.approx(R / (L * sum(range(1, G_MAX + 1))))


def test_coverage_pi_covers_one_scale_up_to_R_minus_1():
    cov = pictures.coverage(small(fixed_scale=3), "pi", n_iter=20, seed=0)
    np.testing.assert_array_equal(cov.covered, spans(cov, {3: (0, R - 1)}))
    # PI trained on the long window (R = L*g) fills its one row, nothing else
    long = pictures.coverage(small(train_len=3 * L, fixed_scale=3), "pi", n_iter=5, seed=0)
    np.testing.assert_array_equal(long.covered, spans(long, {3: (0, 3 * L - 1)}))


def test_coverage_e2_reaches_L_g_minus_1_through_sinks_only():
    cov = pictures.coverage(small(), "e2", n_iter=600, seed=1)
    assert cov.iterations.sum() == 600 and (cov.iterations > 0).all()
    for g in range(1, G_MAX + 1):
        assert cov.max_distance(g) == L * g - 1, g  # the whole window inference at g needs
    np.testing.assert_array_equal(cov.covered, cov.needed)  # everything needed, nothing more
    assert cov.fraction_of_needed() == 1.0
    # distance 0 (a token with itself) is in every iteration
    np.testing.assert_array_equal(cov.counts[:, 0], cov.iterations)

    no_sink_keys = pictures.coverage(small(), "e2", n_iter=600, seed=1, exclude_sink_keys=True)
    assert [no_sink_keys.max_distance(g) for g in range(1, G_MAX + 1)] == [R - 1 - SINKS] * G_MAX

    # no sinks: the offset is a pure shift (Eq. 2), coverage is that of "no offset"
    plain = pictures.coverage(small(n_sink=0), "e2", n_iter=200, seed=1)
    no_offset = pictures.coverage(small(n_sink=0), "e2-no-offset", n_iter=200, seed=1)
    want = spans(plain, {g: (0, R - 1) for g in range(1, G_MAX + 1)})
    np.testing.assert_array_equal(plain.covered, want)
    np.testing.assert_array_equal(no_offset.covered, want)


def test_coverage_counts_equal_brute_force_over_the_same_draws():
    cfg = small(base_window=8, train_len=8, g_max=3)
    n_iter = 40
    cov = pictures.coverage(cfg, "e2", n_iter=n_iter, seed=7)
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
    np.testing.assert_array_equal(pictures.coverage(cfg, "e2", n_iter=n_iter, seed=7).counts, cov.counts)


def test_coverage_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_iter"):
        pictures.coverage(small(), "e2", n_iter=0)
    with pytest.raises(ValueError, match="g_max"):
        pictures.coverage(small(), "e2", n_iter=50, g_max=2)  # draws g up to 4
    with pytest.raises(ValueError, match="unknown scheme"):
        pictures.coverage(small(), "yarn", n_iter=5)


def test_bin_coverage_hand_values():
    cov = pictures.coverage(small(), "none", n_iter=1, seed=0)  # row g=1 covers 0..15 of D = 64
    b = pictures.bin_coverage(cov, 10)  # bins [0,10) [10,20) ... [60,64)
    assert b.shape == (G_MAX, 7)
    np.testing.assert_allclose(b[0], [1.0, 0.6, 0, 0, 0, 0, 0])
    assert not b[1:].any()
    with pytest.raises(ValueError, match="bin_width"):
        pictures.bin_coverage(cov, 0)


# --- draws and scores -------------------------------------------------------------------------


def test_fixed_draw_matches_the_sampler_layout():
    d = pictures.fixed_draw(16, 16, g=3, t=20, n_sink=2)
    assert d.scale.tolist() == [3] and d.offset.tolist() == [20]
    torch.testing.assert_close(d.position_ids[0], augment.e2_position_ids(16, 20, 2))
    torch.testing.assert_close(d.scaled_positions[0], rope.e2_positions(d.position_ids[0], 0, 3))
    with pytest.raises(ValueError, match=r"\[0, 32\]"):
        pictures.fixed_draw(16, 16, g=3, t=33)
    with pytest.raises(ValueError, match="not fit"):
        pictures.fixed_draw(16, 40, g=2, t=0)


def test_score_curve_is_rope_score_at_d_over_g():
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(32, generator=gen), torch.randn(32, generator=gen)
    d = torch.arange(200)
    want = torch.stack([rope.score(q, k, float(x) / 4, 0.0) for x in d]).numpy()
    np.testing.assert_allclose(pictures.score_curve(q, k, d, 4), want, rtol=1e-5, atol=1e-5)
    # PI stretches the curve: a_PI(g*d) = a(d)
    np.testing.assert_array_equal(pictures.score_curve(q, k, d * 4, 4), pictures.score_curve(q, k, d))


# --- plots and files --------------------------------------------------------------------------


def test_plot_helpers_return_fixed_size_figures_and_save(tmp_path):
    import matplotlib.pyplot as plt

    draws = [pictures.fixed_draw(16, 16, g, 0, 2) for g in (2, 3)]
    fig, axes = pictures.plot_position_indices(draws, 16, n_sink=2)
    assert len(axes) == 2 and fig.get_figwidth() == pictures.FIGSIZE[0]
    fig1, axes1 = pictures.plot_position_indices(draws, 16, zoom=None)
    assert len(axes1) == 1
    fig2, ax2 = pictures.plot_scores(np.arange(5), {"a": np.arange(5.0)}, seen=3, vlines={"x": 4}, logx=True,
                                hband=("band", 0.0, 2.0))
    assert tuple(fig2.get_size_inches()) == pictures.FIGSIZE
    assert [ln.get_label() for ln in ax2.get_lines()][0] == "a"
    cov = pictures.coverage(small(), "e2", n_iter=50, seed=0)
    fig3, axes3 = pictures.plot_coverage([cov, cov], labels=["x", "y"], bin_width=8)
    assert tuple(fig3.get_size_inches()) == pictures.TALL_FIGSIZE and len(axes3) == 2

    png = pictures.save_figure(fig3, "test_coverage", {"summary": cov.summary(), "arr": np.arange(3)}, directory=tmp_path)
    assert png == tmp_path / "test_coverage.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "test_coverage.json").read_text())
    assert data["figure"] == "test_coverage.png" and data["arr"] == [0, 1, 2]
    assert data["summary"]["max_distance_by_g"]["1"] == L - 1
    assert oct(png.stat().st_mode & 0o777) == "0o644"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary files left"
    with pytest.raises(ValueError, match="plain file stem"):
        pictures.save_figure(fig3, "../evil", {}, directory=tmp_path)
    with pytest.raises(ValueError, match="at least one"):
        pictures.plot_position_indices([], 16)
    plt.close("all")


def test_figures_dir_and_display_path(tmp_path, monkeypatch):
    here = str(pathlib.Path(__file__).resolve().parents[2])  # the repository root
    monkeypatch.chdir(os.path.join(here, "notebooks") if os.path.isdir(os.path.join(here, "notebooks")) else here)
    assert str(pictures.repo_root()) == os.path.realpath(here)
    monkeypatch.delenv(pictures.ENV_FIGURES, raising=False)
    assert pictures.figures_dir(create=False) == pictures.repo_root() / "figures"
    assert pictures.display_path(pictures.repo_root() / "figures" / "x.png") == "figures/x.png"
    monkeypatch.setenv(pictures.ENV_FIGURES, str(tmp_path / "out"))
    assert pictures.figures_dir() == tmp_path / "out" and (tmp_path / "out").is_dir()
    monkeypatch.chdir(tmp_path)
    assert pictures.repo_root() is None
    assert pictures.display_path(tmp_path / "out" / "y.png") == "out/y.png"


# --- readability: nothing clipped at the axes, plain log ticks, coinciding lines told apart -----------------


def _markers_outside(ax) -> list:
    """Scatter and line markers of ``ax`` whose full extent (not only their centre) reaches outside the axes box,
    as ``(label, x_px, y_px)``: a marker cut in half at an axis limit (Fig. 2/3's sinks at x = 0) shows here."""
    fig = ax.figure
    fig.canvas.draw()
    box, px = ax.get_window_extent(), fig.dpi / 72.0
    bad = []

    def check(label, xy, radius):
        for (x, y), r in zip(xy, np.broadcast_to(radius, (len(xy),))):
            if x - r < box.x0 - 0.5 or x + r > box.x1 + 0.5 or y - r < box.y0 - 0.5 or y + r > box.y1 + 0.5:
                bad.append((label, round(float(x), 1), round(float(y), 1)))

    for c in ax.collections:
        offsets = np.asarray(c.get_offsets())
        if len(offsets) and len(c.get_sizes()):
            check(c.get_label(), c.get_offset_transform().transform(offsets), np.sqrt(c.get_sizes()) * px / 2)
    for ln in ax.get_lines():
        if ln.get_marker() not in (None, "None", "", " "):
            xy = np.column_stack((np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)))
            check(ln.get_label(), ln.get_transform().transform(xy[np.isfinite(xy).all(1)]), ln.get_markersize() * px / 2)
    return bad


def test_position_index_plots_keep_every_marker_inside_the_axes():
    import matplotlib.pyplot as plt

    fig2 = [pictures.fixed_draw(4096, 4096, g, 0, 4) for g in (2, 5, 10)]  # the layout of Fig. 2
    fig3 = [pictures.fixed_draw(4096, 4096, 5, t, 4) for t in (0, 678, 7314, 16384)]  # of Fig. 3, t up to T_max
    for draws, zoom in ((fig2, 4.0), (fig3, None), (fig2[1:2], 4096)):
        fig, axes = pictures.plot_position_indices(draws, 4096, zoom=zoom, n_sink=4)
        for ax in axes:
            assert _markers_outside(ax) == []
        plt.close(fig)


def test_score_and_coverage_keys_sit_off_the_data():
    import matplotlib.pyplot as plt

    d = np.arange(300)
    noise = np.random.default_rng(0).normal(size=300)
    fig, ax = pictures.plot_scores(d, {"a": noise, "b": noise + 0.001, "c": -noise}, seen=100, hband=("band", -1, 1))
    fig.canvas.draw()
    assert not ax.get_legend().get_window_extent().overlaps(ax.get_window_extent())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "b (≈ a)" in labels and "c" in labels  # b lies on a: the key says so, c does not
    plt.close(fig)
    cov = pictures.coverage(small(), "e2", n_iter=20, seed=0)
    fig, axes = pictures.plot_coverage([cov, cov], bin_width=8)
    fig.canvas.draw()
    assert len(fig.legends) == 1
    assert not any(fig.legends[0].get_window_extent().overlaps(a.get_window_extent()) for a in axes)
    plt.close(fig)


@pytest.mark.parametrize("lo, hi", [(29.69, 76.79), (30.89, 43.27), (31.46, 39.63), (35.98, 52.19), (4.6, 82.0),
                                    (5.1, 124.0), (0.003, 0.9), (100.0, 100.0), (1.0, 1e6)])
def test_plain_log_axis_labels_plain_numbers_around_every_point(lo, hi):
    import re

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ys = np.geomspace(lo, hi, 7)
    ax.plot(np.arange(7), ys, marker="o")
    ticks = pictures.plain_log_axis(ax)
    fig.canvas.draw()
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels and all(re.fullmatch(r"\d+(\.\d+)?", s) for s in labels), labels  # no "6×10¹", no "1e+06"
    assert ticks[0] <= ys.min() and ticks[-1] >= ys.max(), ticks  # inside the labelled range
    y0, y1 = ax.get_ylim()
    assert y0 < ticks[0] and y1 > ticks[-1]
    assert len(ticks) <= 10
    assert _markers_outside(ax) == []
    plt.close(fig)
    _, empty = plt.subplots()  # nothing positive to cover (a partial report): log scale, no ticks, no error
    assert pictures.plain_log_axis(empty, values=[0.0, float("nan")]) == [] and empty.get_yscale() == "log"
    with pytest.raises(ValueError, match="axis"):
        pictures.plain_log_axis(empty, axis="z")
    plt.close("all")


def test_distinguish_lines_gives_own_markers_and_names_coinciding_lines():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    x = [256, 512, 1024]
    ax.plot(x, [25.6, 30.4, 39.1], label="E²")
    ax.plot(x, [25.6, 30.5, 39.2], label="E², P(g) ∝ 1/g")  # the quick profile's Table 3: on top of E²
    ax.plot(x, [39.9, 39.8, 40.7], label="PI")
    ax.plot(x[:2], [25.6, 30.4], label="short")  # other x values: never "coinciding"
    ax.axhline(30.0, label="control")  # not a data line
    pictures.plain_log_axis(ax)
    groups = pictures.distinguish_lines(ax)
    assert groups == [["E²", "E², P(g) ∝ 1/g (≈ E²)"]]
    e2, harm, pi, short = ax.get_lines()[:4]
    assert len({ln.get_marker() for ln in (e2, harm, pi, short)}) == 4
    assert harm.get_linestyle() != e2.get_linestyle() and harm.get_zorder() > e2.get_zorder()
    assert e2.get_linewidth() > harm.get_linewidth() and e2.get_alpha() < 1
    assert pi.get_label() == "PI" and short.get_label() == "short"
    plt.close(fig)


def test_report_and_retrieval_figures_stay_readable():
    import matplotlib.pyplot as plt

    from e2llm_lite.studies.retrieval import study as retrieval_base
from e2llm_lite.studies.miniature import report
    from e2llm_lite.studies.miniature.reproduce import shipped_results

    f5 = shipped_results()["fig5"]
    fig, ax = report.plot_fig5(f5)
    ticks = list(ax.get_yticks())
    values = [v for vals in f5["ppl"].values() for v in vals] + list(f5["auto"])
    assert ticks[0] <= min(values) and ticks[-1] >= max(values)  # the lowest point sat below the last tick
    assert tuple(fig.get_size_inches()) == (6.0, 4.0)  # notebook 04 prints this size
    plt.close(fig)

    study = retrieval_base.shipped_results()
    fig, axes = retrieval_base.plot_fig6(study)
    fig.canvas.draw()
    assert fig.get_figwidth() <= 10  # one row of five panels was 22 inches: unreadable at page width
    heat = [a for a in axes.ravel() if a.images]
    assert len(heat) == len(study["grids"])
    assert min(t.get_fontsize() for a in heat for t in a.texts) >= 9
    boxes = [a.title.get_window_extent() for a in heat]
    assert not any(b.overlaps(c) for i, b in enumerate(boxes) for c in boxes[i + 1:])
    plt.close(fig)
