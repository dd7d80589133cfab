"""e2llm_lite.pictures: the plot helpers return fixed-size, readable figures (markers inside the axes, keys off the
data, plain log ticks, coinciding lines told apart), and the figures of the studies stay readable."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from e2llm_lite import augment, rope  # noqa: E402
from e2llm_lite import coverage as cv  # noqa: E402
from e2llm_lite import figure_files, pictures  # noqa: E402


def small(**kw):
    args = dict(base_window=16, train_len=16, g_max=4, n_sink=2)
    args.update(kw)
    return augment.AugmentConfig(**args)


# --- draws and scores -------------------------------------------------------------------------


def test_fixed_draw_matches_the_sampler_layout():
    d = pictures.fixed_draw(16, 16, g=3, t=20, n_sink=2)
    assert d.scale.tolist() == [3] and d.shift.tolist() == [20]
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


def test_plot_helpers_return_fixed_size_figures():
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
    cov = cv.coverage(small(), "e2", n_iter=50, seed=0)
    fig3, axes3 = pictures.plot_coverage([cov, cov], labels=["x", "y"], bin_width=8)
    assert tuple(fig3.get_size_inches()) == pictures.TALL_FIGSIZE and len(axes3) == 2
    assert axes3[0].get_title(loc="left").startswith(f"x: {100 * cov.fraction_of_needed():.1f}% of needed")
    with pytest.raises(ValueError, match="at least one"):
        pictures.plot_position_indices([], 16)
    with pytest.raises(ValueError, match="at least one Coverage"):
        pictures.plot_coverage([])
    plt.close("all")


def test_the_notebooks_reach_figure_files_and_coverage_through_pictures():
    """Notebooks 01–06 call ``pictures.save_figure``, ``pictures.coverage`` …: the same functions as their modules'."""
    for name in ("save_figure", "figures_dir", "display_path", "repo_root"):
        assert getattr(pictures, name) is getattr(figure_files, name), name
    for name in ("coverage", "bin_coverage", "position_runs", "distance_intervals", "Coverage"):
        assert getattr(pictures, name) is getattr(cv, name), name


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
    cov = cv.coverage(small(), "e2", n_iter=20, seed=0)
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

    from e2llm_lite.studies import retrieval
    from e2llm_lite.studies.miniature import plots
    from e2llm_lite.studies.miniature.reproduce import shipped_results

    f5 = shipped_results()["fig5"]
    fig, ax = plots.plot_fig5(f5)
    ticks = list(ax.get_yticks())
    values = [v for vals in f5["ppl"].values() for v in vals] + list(f5["auto"])
    assert ticks[0] <= min(values) and ticks[-1] >= max(values)  # the lowest point sat below the last tick
    assert tuple(fig.get_size_inches()) == (6.0, 4.0)  # notebook 04 prints this size
    plt.close(fig)

    study = retrieval.shipped_results()
    fig, axes = retrieval.plot_fig6(study)
    fig.canvas.draw()
    assert fig.get_figwidth() <= 10  # one row of five panels was 22 inches: unreadable at page width
    heat = [a for a in axes.ravel() if a.images]
    assert len(heat) == len(study["grids"])
    assert min(t.get_fontsize() for a in heat for t in a.texts) >= 9
    boxes = [a.title.get_window_extent() for a in heat]
    assert not any(b.overlaps(c) for i, b in enumerate(boxes) for c in boxes[i + 1:])
    plt.close(fig)
