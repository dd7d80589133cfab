"""The retrieval study (``e2llm_lite.studies.retrieval``, ``e2llm-lite reproduce --only retrieval``) on its
quick profile: phases, resume, token budgets, family-aware grids, validation and the generated report."""
import copy
import json
from dataclasses import replace

import pytest

from e2llm_lite import cli
from e2llm_lite.studies import retrieval as rb
from e2llm_lite.studies.retrieval import base as retrieval_base
from e2llm_lite.studies.retrieval import run as retrieval_run

QUICK = rb.RETRIEVAL_PROFILES["quick"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """One quick study through the CLI (the `--only retrieval` wiring), into a temporary folder."""
    root = tmp_path_factory.mktemp("retrieval")
    rc = cli.main(["reproduce", "--only", "retrieval", "--profile", "quick", "--out", str(root / "out"),
                   "--work", str(root / "work"), "--threads", "1", "--no-progress"])
    assert rc == 0
    res = json.loads((root / "out" / "results" / "retrieval" / "retrieval.json").read_text())
    return root, res


def test_phases_write_json_figures_report_and_resume(study, monkeypatch):
    root, res = study
    rdir = root / "out" / "results" / "retrieval"
    stems = {"base", "ft_pi", "ft_e2-linear", "ft_e2-yarn", "curve_step0", "retrieval",
             *(f"grid_{s}" for s in rb.GRID_STEMS.values())}
    assert {p.stem for p in rdir.glob("*.json")} == stems
    for png in ("retrieval_fig6.png", "retrieval_steps.png"):
        assert (root / "out" / "figures" / png).read_bytes()[:4] == b"\x89PNG"
    assert set(res["grids"]) == set(rb.METHODS)
    for m, g in res["grids"].items():
        want_g = [float(QUICK.pi_scale)] * len(QUICK.mults) if m == "PI" else [float(k) for k in QUICK.mults]
        assert g["lengths"] == [k * QUICK.L for k in QUICK.mults] and g["g"] == want_g  # PI: its own scale
        assert g["family"] == rb.METHODS[m][1]
        assert len(g["accuracy"]) == len(QUICK.depths) and all(0 <= a <= 1 for row in g["accuracy"] for a in row)
        assert all(x > 0 for row in g["answer_nll"] for x in row)
    # E² runs record exact match every curve_every steps; step 0 is the base with each family
    for run in ("e2-linear", "e2-yarn"):
        pts = res["curves"][run]["points"]
        assert [x["step"] for x in pts] == [0, 2, 4]
        assert set(pts[1]) == {"step", "mean_exact", *(f"exact@{k * QUICK.L}" for k in QUICK.curve_mults)}
    assert res["finetune"]["pi"]["curve"] == []
    # a second call finds every phase done: nothing is trained or evaluated again, same results
    for mod in (retrieval_run, retrieval_base):  # pre-training (base) and fine-tuning (run)
        monkeypatch.setattr(mod, "train", lambda *a, **k: pytest.fail("trained again"))
    monkeypatch.setattr(retrieval_run, "evaluate_grid", lambda *a, **k: pytest.fail("grid evaluated again"))
    monkeypatch.setattr(retrieval_run, "curve_point", lambda *a, **k: pytest.fail("curve evaluated again"))
    again = rb.RetrievalRun(QUICK, root / "out", root / "work", progress=False, log=lambda *a: None).run_all()
    for k in ("base", "finetune", "grids", "curves", "verdicts"):
        assert again[k] == res[k], k
    # a deleted grid is the only thing recomputed
    (rdir / "grid_pi.json").unlink()
    monkeypatch.undo()
    rerun = rb.RetrievalRun(QUICK, root / "out", root / "work", progress=False, log=lambda *a: None)
    for mod in (retrieval_run, retrieval_base):
        monkeypatch.setattr(mod, "train", lambda *a, **k: pytest.fail("trained again"))
    g = rerun.grid("PI")
    flat = lambda rows: [x for row in rows for x in row]  # noqa: E731
    assert g["accuracy"] == res["grids"]["PI"]["accuracy"]
    assert flat(g["answer_nll"]) == pytest.approx(flat(res["grids"]["PI"]["answer_nll"]), abs=1e-5)


def test_work_folder_belongs_to_one_profile(study):
    root, _ = study
    with pytest.raises(ValueError, match="another retrieval profile .*ft_steps"):
        rb.RetrievalRun(replace(QUICK, ft_steps=5), root / "out2", root / "work", log=lambda *a: None)


def test_pi_and_e2_use_the_same_token_budget(study):
    _, res = study
    ft = res["finetune"]
    L = QUICK.L
    assert (ft["pi"]["train_len"], ft["pi"]["batch"]) == (QUICK.pi_scale * L, QUICK.ft_batch // QUICK.pi_scale)
    for run in ("e2-linear", "e2-yarn"):
        assert (ft[run]["train_len"], ft[run]["batch"]) == (L, QUICK.ft_batch)
    assert len({f["tokens_per_step"] for f in ft.values()}) == 1 and len({f["tokens"] for f in ft.values()}) == 1
    assert {f["family"] for f in ft.values()} == {"linear", "yarn"} and ft["e2-yarn"]["family"] == "yarn"
    assert all(f["passkey_rows"] >= 1 for f in ft.values())
    assert res["base"]["check_n"] == QUICK.check_n and 0 <= res["base"]["in_window_exact"] <= 1


def test_yarn_grid_equals_linear_at_g1_and_differs_past_it(study):
    root, _ = study
    run = rb.RetrievalRun(QUICK, root / "out", root / "work", progress=False, log=lambda *a: None)
    model = run.model("e2-yarn")
    kw = dict(tokenizer=run.tok, filler=run.filler, L=QUICK.L, mults=(1, 4), depths=(0.5,), n_per_cell=2)
    lin = rb.evaluate_grid(model, family="linear", **kw)
    yarn = rb.evaluate_grid(model, family="yarn", **kw)
    assert lin["g"] == yarn["g"] == [1.0, 4.0]
    assert lin["accuracy"][0][0] == yarn["accuracy"][0][0]
    assert lin["answer_nll"][0][0] == yarn["answer_nll"][0][0]  # g = 1: the same model, bit for bit
    # g = 4: other frequencies and YaRN's attention scaling (a 4-step model is near uniform: small but real)
    assert abs(lin["answer_nll"][0][1] - yarn["answer_nll"][0][1]) > 1e-6
    # the scale is restored: a g = 1 evaluation afterwards gives the first numbers again
    assert rb.evaluate_grid(model, family="linear", **{**kw, "mults": (1,)})["answer_nll"][0][0] == lin["answer_nll"][0][0]


@pytest.mark.parametrize("field,value,match", [
    ("pi_scale", 1, r"pi_scale must be an integer in \[2, 4\].*got pi_scale=1"),
    ("ft_batch", 3, r"ft_batch must be a multiple of pi_scale = 2.*ft_batch=3"),
    ("mults", (1, 8), r"mults item must be an integer in \[1, 4\].*g_max = 4.*=8"),
    ("depths", (0.0, 1.5), r"depths must be .* numbers in \[0, 1\]"),
    ("pk_frac", 0.0, r"pk_frac must be a number in \(0, 1\]"),
    ("pre_passkey", 9, r"pre_passkey must be an integer in \[1, 4\]"),
    ("ft_steps", 0, r"ft_steps must be an integer >= 1, got ft_steps=0"),
    ("ft_lr", -1.0, r"ft_lr must be a number > 0"),
])
def test_bad_profile_values_raise_with_the_valid_range(field, value, match):
    with pytest.raises(ValueError, match=match):
        replace(QUICK, **{field: value})


def test_cli_rejects_a_real_profile_for_retrieval(tmp_path):
    with pytest.raises(ValueError, match="--only retrieval needs --profile in"):
        rb.reproduce(type("A", (), dict(profile="real", steps=None, seed=0, out=str(tmp_path), work=str(tmp_path / "w"),
                                  no_progress=True))())


def _fake(res, lin_curve, yarn_curve, far_lin, far_yarn, far_zero_shot):
    """The quick study's inputs with chosen curves and chosen exact match at >= 4·L."""
    fts = copy.deepcopy(res["finetune"])
    grids = copy.deepcopy(res["grids"])
    step0 = {}
    for run, vals in (("e2-linear", lin_curve), ("e2-yarn", yarn_curve)):
        step0[run] = {"mean_exact": vals[0]}
        fts[run]["curve"] = [{"step": 100 * (i + 1), "mean_exact": v} for i, v in enumerate(vals[1:])]
    for m, v in (("E²-linear", far_lin), ("E²-yarn", far_yarn), ("base + YaRN", far_zero_shot)):
        grids[m]["accuracy"] = [[1.0 if n == QUICK.L else v for n in grids[m]["lengths"]] for _ in grids[m]["depths"]]
    base = dict(res["base"], in_window_exact=1.0)
    p = replace(QUICK, curve_n=50, n_per_cell=50)
    return rb.summarise(p, base, fts, step0, grids)


def test_verdicts_and_report_follow_the_numbers(study, tmp_path):
    _, res = study
    decay = _fake(res, [0.1, 0.6, 0.4, 0.2], [0.1, 0.5, 0.6, 0.62], far_lin=0.2, far_yarn=0.7, far_zero_shot=0.2)
    v = decay["verdicts"]
    assert v["base_learned"]["holds"] and v["linear_decays"]["holds"] and v["yarn_holds"]["holds"]
    assert v["yarn_further"]["holds"] and v["e2_beyond_zero_shot_yarn"]["holds"]
    assert decay["curves"]["e2-linear"]["peak_step"] == 100 and decay["curves"]["e2-linear"]["final"] == 0.2
    flat = _fake(res, [0.1, 0.5, 0.5, 0.52], [0.1, 0.6, 0.3, 0.1], far_lin=0.5, far_yarn=0.5, far_zero_shot=0.5)
    v = flat["verdicts"]
    assert not v["linear_decays"]["holds"] and not v["yarn_holds"]["holds"] and not v["yarn_further"]["holds"]
    assert not v["e2_beyond_zero_shot_yarn"]["holds"]
    for summary in (decay, flat):
        summary.update(threads=1, python="3", torch="2")
    a = rb.write_report(decay, tmp_path / "a.md")
    b = rb.write_report(flat, tmp_path / "b.md")
    assert "60 % in the first half of fine-tuning, 20 % in the second" in a and "peak 60 % at step 100, last 20 %" in a
    assert "E²-yarn 70 % vs E²-linear 20 %" in a and "E²-yarn 50 % vs E²-linear 50 %" in b
    assert a.count("**yes**") == 5 and b.count("**yes**") == 1  # only the base precondition holds in b
    assert "retrieval base" in a and "/tmp" not in a
    assert "E²-linear decays over fine-tuning here (60 % → 20 %" in a and "E² training adds to what YaRN gives" in a
    assert "E²-linear does not decay" in b and "already retrieves 50 % at ≥ 4·L" in b
    # the report shipped by the run is the one write_report makes from its results
    root, _ = study
    report = (root / "out" / "figures" / "REPORT_retrieval.md").read_text()
    assert report == rb.write_report(res, tmp_path / "c.md")
    for m, vals in res["by_length"].items():
        rule = f"g = {QUICK.pi_scale} at every length" if m == "PI" else f"g = length / {QUICK.L}"
        assert f"| {m} | {res['grids'][m]['family']}, {rule} | " + " | ".join(
            f"{100 * x:.0f} %" for x in vals) + " |" in report


def test_shipped_results_are_the_full_study(tmp_path):
    """The package carries the full study's grids, curves and verdicts (notebook 05 reads them)."""
    res = rb.shipped_results()
    assert set(res["grids"]) == set(rb.METHODS) and res["profile"]["name"] == "full"
    assert res["grids"]["PI"]["g"] == [float(res["profile"]["pi_scale"])] * len(res["grids"]["PI"]["lengths"])
    for m, g in res["grids"].items():
        assert all(0 <= a <= 1 for row in g["accuracy"] for a in row)
        assert res["by_length"][m] == pytest.approx([sum(r[i] for r in g["accuracy"]) / len(g["accuracy"])
                                                      for i in range(len(g["lengths"]))])
    assert {"points", "final"} <= set(res["curves"]["e2-yarn"]) and "base_learned" in res["verdicts"]
    # ship_results keeps only the compact keys
    out = rb.ship_results({**res, "finetune": {"huge": 1}}, tmp_path / "r.json")
    assert "finetune" not in json.loads(out.read_text())
