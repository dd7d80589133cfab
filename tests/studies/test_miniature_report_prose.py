"""REPORT.md prose is generated from the run's own numbers (a quick report must not reuse full-profile prose).

The results dicts below are built by hand, so every expected count and direction is derived here from
the numbers put in — not copied from a run.
"""
from dataclasses import asdict

import pytest

from e2llm_lite.studies.miniature.reproduce import PROFILES
from e2llm_lite.studies.miniature.report import discussion, write_report

L = 256


def _grid(rows: dict[str, list], lengths):
    return {"rows": list(rows), "lengths": lengths, "ppl": list(rows.values())}


def _results(lengths, e2_far, fixed_far, e2_long=None):
    """A complete ``out`` dict; ``e2_far``/``fixed_far``: E² and the fixed-scale ablation at the last length."""
    n = len(lengths)
    e2 = [30.0 + i for i in range(n - 1)] + [e2_far]
    t3 = _grid({"base (no fine-tuning)": [29.0 * 1.5 ** i for i in range(n)],
                f"none, continued at {L} (g = 1)": [29.5 * 1.5 ** i for i in range(n)],
                "PI at 1024 (g = 4)": [32.0] * (n - 1) + [50.0],
                "E² (g = length / L)": e2,
                "E²-1K (g = 4)": [33.0, 32.0, 31.5, None][:n]}, lengths)
    lev = _grid({f"none, continued at L (x steps)": t3["ppl"][1], "E² (x steps)": e2,
                 "E² (3x steps)": e2_long or [v - 1 for v in e2]}, lengths)
    t4 = _grid({"E²": e2, "E² (no offset)": [v * 1.01 for v in e2], "E² (fixed scale g = 4)": [31.0] * (n - 1) + [fixed_far]},
               lengths)
    t5 = _grid({f"{s} sinks": e2 for s in (0, 2, 4, 6)}, lengths)
    fig5 = {"lengths": [256, 1024, 2048], "g_max": 16, "ppl": {"16": [40.0, 41.0, 42.0], "24": [43.0, 44.0, 45.0]},
            "auto": [30.0, 31.0, 32.0]}
    fig4 = {"keys": ["ppl@256", "ppl@1024"], "points": [{"step": 0, "ppl@256": 30.0, "ppl@1024": 40.0},
                                                        {"step": 2, "ppl@256": 30.5, "ppl@1024": 39.0}]}
    pk = {"lengths": [256, 512], "depths": [0.0, 1.0], "accuracy": [[0.0, 0.0], [0.0, 0.0]]}
    fig6 = {"base": pk, "none": pk, "PI (g = 4)": pk, "E² (g = length / L)": pk}
    return {"table3": t3, "levers": lev, "table4": t4, "table5": t5, "fig5": fig5, "fig4": fig4, "fig6": fig6}


def test_quick_profile_prose_uses_the_quick_numbers():
    quick = asdict(PROFILES["quick"])
    text = discussion(_results([256, 512, 1024], e2_far=39.0, fixed_far=38.0), L, quick)
    steps, gmax = quick["ft_steps"], quick["g_max"]
    assert f"so {steps} steps give each scale only ~{steps / gmax:.2g} update" in text
    assert "150 steps" not in text and "~9 updates" not in text
    assert "(0×" not in text and "within the L·G_max = 4096 tokens" in text  # 2048 < 16·256: not "0×" of it
    # the fixed-scale ablation's window (4·L = 1024) is the longest length here: no verdict past it
    assert "no length past its window 1024 was measured" in text and "holds there" not in text
    # Fig. 4 over two points: direction from the numbers (40.0 -> 39.0 falls), no "fast early" claim
    assert "falls from 40.00 (step 0) to 39.00 (step 2)." in text and "fast early" not in text


@pytest.mark.parametrize("fixed_far, verdict", [(60.0, "holds there."), (35.0, "does not hold there.")])
def test_ablation_sentence_follows_its_numbers(fixed_far, verdict):
    full = asdict(PROFILES["full"])
    text = discussion(_results([256, 512, 1024, 2048], e2_far=40.0, fixed_far=fixed_far), L, full)
    assert f"the paper's order (full E² better than fixed scale) {verdict}" in text
    assert "150 steps give each scale only ~9.4 updates" in text  # 150 / 16
    assert "(0.5× the L·G_max" not in text and "within the L·G_max = 4096 tokens" in text


def test_lever_sentence_counts_the_columns_that_improve():
    lengths = [256, 512, 1024]  # E² (x steps): 30, 31, 39
    text = discussion(_results(lengths, e2_far=39.0, fixed_far=38.0, e2_long=[29.0, 32.0, 38.0]), L,
                      asdict(PROFILES["quick"]))
    assert "2 of 3 columns improve on the 2-step run" in text  # 29 < 30, 32 > 31, 38 < 39
    assert "does not yet pay" in text  # best long 32.0 (@512) > control 29.5 @L
    text = discussion(_results(lengths, e2_far=39.0, fixed_far=38.0, e2_long=[29.0, 28.0, 27.0]), L,
                      asdict(PROFILES["quick"]))
    assert "Every column improves on the 2-step run" in text and "long context pays" in text  # 27 < 29.5


def test_quick_report_says_it_is_a_smoke_test(tmp_path):
    out = _results([256, 512, 1024], e2_far=39.0, fixed_far=38.0)
    claims = {k: {"verdict": "partly", "evidence": "…"} for k in "abcde"}
    for name in ("quick", "full"):
        summary = {"profile": asdict(PROFILES[name]), "L": L, "claims": claims, "seed": 0, "python": "3.11",
                   "torch": "2", "threads": 1, "eval_segments": {"n": 1, "tokens": 1024}, "wall_s": {"data": 1.0},
                   "base": {"params": 1, "path": "assets", "pretrain": {}}}
        write_report(out, summary, tmp_path / "R.md")
        text = (tmp_path / "R.md").read_text()
        assert ("**Smoke test.**" in text) == (name == "quick")
        assert "FACTS" not in text and "DIGEST" not in text
