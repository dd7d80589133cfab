"""Tests for `e2llm-lite reproduce` (quick profile, run once per session into runs/quick)."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from e2llm_lite import cli
from e2llm_lite.augment import SCHEMES, Draw, Scheme, register_scheme
from e2llm_lite.data import passkey_rows as _passkey_rows
from e2llm_lite.studies.miniature.reproduce import PROFILES, Reproduction
from e2llm_lite.studies.miniature.runs import RunSpec, runs

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "runs" / "quick"  # gitignored; notebooks 04/05 read it


@pytest.fixture(scope="session")
def quick():
    """One fresh quick reproduction (also the output notebooks reuse)."""
    shutil.rmtree(QUICK, ignore_errors=True)
    rc = cli.main(["reproduce", "--profile", "quick", "--out", str(QUICK), "--work", str(QUICK / "work"), "--no-progress"])
    assert rc == 0
    return QUICK


def _json(p):
    return json.loads(Path(p).read_text())


def test_outputs_written(quick):
    for name in ("table3", "table4", "table5", "fig4", "fig5", "fig6", "reproduce"):
        assert (quick / "results" / f"{name}.json").is_file(), name
    for name in ("table3.md", "table3.png", "table4.md", "table5.md", "fig4.png", "fig5.png", "fig6.png", "REPORT.md"):
        assert (quick / "figures" / name).stat().st_size > 0, name
    report = (quick / "figures" / "REPORT.md").read_text()
    assert "## Claims" in report and "(e) passkey" in report and "/work/" not in report and "/root/" not in report
    summary = _json(quick / "results" / "reproduce.json")
    assert set(summary["claims"]) == set("abcde")
    assert all(c["verdict"] in ("holds", "partly", "does not hold") for c in summary["claims"].values())
    # every run of the run list was trained, in its order; the paper's runs are among them
    assert list(summary["runs"]) == [s.name for s in runs(PROFILES["quick"])]
    assert set(summary["runs"]) >= {"none", "pi", "e2", "e2-no-offset", "e2-fixed-scale", "e2-sink0", "e2-sink2", "e2-sink6",
                                    "e2-harmonic", "e2-ntk", "e2-yarn", "e2-x3"}
    table = _json(quick / "results" / "table_runs.json")  # one row per run, each with its own g rule
    assert table["rows"] == [s.row_label() for s in runs(PROFILES["quick"])]
    rows = dict(zip(table["rows"], table["g"]))
    assert rows["none (g = 1)"] == [1.0, 1.0, 1.0] and rows["pi (g = 4)"] == [4.0, 4.0, 4.0]
    assert rows["e2-yarn (g = length / L, YaRN)"] == [1.0, 2.0, 4.0]


def test_table3_shape_and_protocol(quick):
    t3 = _json(quick / "results" / "table3.json")
    L = 256
    assert t3["lengths"] == [L, 2 * L, 4 * L]
    rows = dict(zip(t3["rows"], zip(t3["ppl"], t3["g"], t3["n_tokens"])))
    # every cell scores the same tokens: disjoint windows over the same segments
    n = {c for _, _, ns in rows.values() for c in ns if c is not None}
    assert len(n) == 1
    pi = next(v for k, v in rows.items() if k.startswith("PI"))
    assert pi[1] == [4.0, 4.0, 4.0]
    auto = rows["E² (g = length / L)"]
    assert auto[1] == [1.0, 2.0, 4.0]
    fixed = next(v for k, v in rows.items() if k.startswith("E²-1K"))
    assert fixed[0][2] is not None and fixed[1][:3] == [4.0, 4.0, 4.0]
    assert all(v is None or 1.0 < v < 2048 * 4 for r in t3["ppl"] for v in r)


def test_same_token_budget(quick):
    runs = _json(quick / "results" / "reproduce.json")["runs"]
    tokens = {k: r["train_len"] * r["batch"] for k, r in runs.items()}
    assert len(set(tokens.values())) == 1, tokens
    assert runs["pi"]["train_len"] == 4 * runs["e2"]["train_len"]


def test_cells_match_direct_evaluation(quick):
    """A table cell equals perplexity() on the saved fine-tuned weights (nothing lost on the way)."""
    from safetensors.torch import load_file

    from e2llm_lite.eval.perplexity import perplexity

    rep = Reproduction(PROFILES["quick"], quick / "recheck", quick / "work", progress=False)
    rep.load_data()
    model = rep._fresh_base()
    model.load_state_dict(load_file(str(quick / "work" / "models" / "e2.safetensors")))
    model.eval()
    t3 = _json(quick / "results" / "table3.json")
    cell = t3["ppl"][t3["rows"].index("E² (g = length / L)")][1]
    r = perplexity(model, rep.segments, 512, stride=511, g="auto", base_window=256, batch_size=4)
    assert r.ppl == pytest.approx(cell, rel=1e-6)
    shutil.rmtree(quick / "recheck", ignore_errors=True)


def test_rerun_resumes_and_is_identical(quick, tmp_path):
    """Delete one finished phase and one fine-tuned model: a re-run redoes exactly those, same numbers."""
    before = {k: _json(quick / "results" / f"{k}.json") for k in ("table3", "table5")}
    work = tmp_path / "work"
    shutil.copytree(quick / "work", work)
    (work / "models" / "e2-sink2.safetensors").unlink()
    shutil.rmtree(work / "ckpt" / "e2-sink2")
    memo = _json(work / "ppl_memo.json")
    memo = {k: v for k, v in memo.items() if not k.startswith("e2-sink2|")}
    (work / "ppl_memo.json").write_text(json.dumps(memo))
    times = _json(work / "times.json")
    for k in ("finetune:e2-sink2", "table5"):
        times.pop(k)
    (work / "times.json").write_text(json.dumps(times))
    out = tmp_path / "out"
    shutil.copytree(quick / "results", out / "results")
    rc = cli.main(["reproduce", "--profile", "quick", "--out", str(out), "--work", str(work), "--no-progress"])
    assert rc == 0
    assert _json(out / "results" / "table5.json")["ppl"] == before["table5"]["ppl"]
    assert _json(out / "results" / "table3.json")["ppl"] == before["table3"]["ppl"]
    new_times = _json(work / "times.json")
    assert "finetune:e2-sink2" in new_times and new_times["finetune:none"] == times["finetune:none"]


def test_families_table(quick):
    """E² over the ntk / yarn families: trained with its family, evaluated with it (== stock transformers)."""
    import transformers
    from safetensors.torch import load_file

    from e2llm_lite.eval.perplexity import perplexity

    res = _json(quick / "results" / "table3_families.json")
    assert (quick / "figures" / "table3_families.md").read_text().count("| yarn |") == 1
    rows = dict(zip(res["rows"], zip(res["ppl"], res["g"])))
    L = 256
    for fam in ("linear", "ntk", "yarn"):
        assert rows[f"E²-{fam} (g = length / L)"][1] == [1.0, 2.0, 4.0]
        assert set(res["ratios"][fam]) >= {"short_cost", "short_cost_fixed_g", "long_gain", "vs_pi_past_window"}
    # at L the scale is g = 1, the identity of every family: zero-shot rows equal the unscaled model
    assert rows["base + YaRN zero-shot (g = length / L)"][0][0] == rows["base (no fine-tuning)"][0][0]
    assert rows["none + NTK zero-shot (g = length / L)"][0][0] == rows[f"none, continued at {L} (g = 1)"][0][0]
    runs = _json(quick / "results" / "reproduce.json")["runs"]
    assert runs["e2-yarn"]["config"]["augment"]["family"] == "yarn"
    # the yarn cell at 2·L equals a stock transformers YaRN model (factor 2, original window L), same weights
    rep = Reproduction(PROFILES["quick"], quick / "recheck", quick / "work", progress=False)
    rep.load_data()
    cfg = rep.base.config.__class__.from_dict(
        {**rep.base.config.to_dict(), "max_position_embeddings": 2 * L,
         "rope_parameters": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": L, "rope_theta": 10000.0}})
    stock = transformers.LlamaForCausalLM(cfg).eval()
    stock.load_state_dict(load_file(str(quick / "work" / "models" / "e2-yarn.safetensors")))
    r = perplexity(stock, rep.segments, 2 * L, stride=2 * L - 1, g=None, batch_size=4)
    assert r.ppl == pytest.approx(rows["E²-yarn (g = length / L)"][0][1], rel=1e-5)
    shutil.rmtree(quick / "recheck", ignore_errors=True)


def _every_other(cfg, gen, batch_size):
    """A stub scheme: ids 0, 2, 4, … at g = 2."""
    pos = (2 * torch.arange(cfg.train_len)).expand(batch_size, -1).clone()
    return Draw(scale=torch.full((batch_size,), 2, dtype=torch.int64), position_ids=pos)


def test_a_registered_scheme_is_one_more_run(quick, tmp_path):
    """Append one RunSpec for a stub scheme to the run list: the runner trains it on the ids the scheme drew (seen
    at the rotary module), with the study's token budget, and gives it a row in the results — no code names it.
    The other runs come finished from the quick run's work folder (a copy), so only the stub trains."""
    register_scheme(Scheme("every-other", _every_other, "even position ids at g = 2 (a test stub)",
                           train_scale=lambda cfg: 2))
    try:
        work = tmp_path / "work"
        shutil.copytree(quick / "work", work)
        specs = [*runs(PROFILES["quick"]), RunSpec("every-other", "every-other")]
        rep = Reproduction(PROFILES["quick"], tmp_path / "out", work, runs=specs, progress=False)
        rot, seen = rep.base.model.rotary_emb, []
        theta = rot.inv_freq.detach().clone()

        def probe(module, args, kwargs):  # copied with the base into every run's model
            if module.training:
                pos = args[1] if len(args) > 1 else kwargs["position_ids"]
                seen.append((float(theta[1] / module.inv_freq[1]), pos.detach().clone()))

        rot.register_forward_pre_hook(probe, with_kwargs=True)
        summary = rep.run_all()
    finally:
        SCHEMES.pop("every-other")
    L, p = 256, PROFILES["quick"]
    assert len(seen) == p.ft_steps  # one micro-batch per step, and no other run trained
    for ratio, pos in seen:
        assert ratio == pytest.approx(2.0, rel=1e-6)
        assert pos.shape == (p.ft_batch, L) and (pos == 2 * torch.arange(L)).all()
    run = summary["runs"]["every-other"]
    assert run["scheme"] == "every-other" and run["config"]["scheme"] == "every-other"
    assert (run["train_len"], run["batch"]) == (L, p.ft_batch)  # the same tokens per step as every run
    table = _json(tmp_path / "out" / "results" / "table_runs.json")
    row = table["rows"].index("every-other (g = length / L)")
    assert table["g"][row] == [1.0, 2.0, 4.0] and all(v > 1.0 for v in table["ppl"][row])
    assert "every-other (g = length / L)" in (tmp_path / "out" / "figures" / "table_runs.md").read_text()
    # the paper's tables are unchanged by one more run
    for stem in ("table3", "table4", "table5"):
        assert _json(tmp_path / "out" / "results" / f"{stem}.json")["ppl"] == _json(quick / "results" / f"{stem}.json")["ppl"]


def test_a_run_list_is_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown scheme 'banana'; valid schemes"):
        RunSpec("x", "banana")
    with pytest.raises(ValueError, match="unknown RoPE scale family 'YaRN'"):
        RunSpec("x", "e2", family="YaRN")
    with pytest.raises(ValueError, match="eval_g must be 'auto', None or an integer"):
        RunSpec("x", "e2", eval_g="length")
    specs = runs(PROFILES["quick"])
    assert [s.sequence_scale for s in specs[:3]] == [1, PROFILES["quick"].pi_scale, 1]  # PI pays g x longer rows
    with pytest.raises(ValueError, match="run 'e2' appears twice"):
        Reproduction(PROFILES["quick"], tmp_path / "out", tmp_path / "work", runs=[*specs, RunSpec("e2", "e2")])
    with pytest.raises(ValueError, match="continues from 'e2', which is not an earlier run"):
        Reproduction(PROFILES["quick"], tmp_path / "out", tmp_path / "work", runs=[RunSpec("e2-x3", "e2", continue_from="e2")])
    assert not (tmp_path / "out").exists()  # refused before any folder is made


def test_passkey_rows_share():
    assert _passkey_rows(4, 0.25) == (1, 1)
    assert _passkey_rows(8, 0.25) == (2, 1)
    assert _passkey_rows(1, 0.25) == (1, 4)
    assert _passkey_rows(4, 0.0) == (0, 1)


def test_bad_profile_rejected():
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--profile", "huge"])


def test_user_corpus_and_work_folder_guard(tmp_path):
    """--corpus reads every UTF-8 file of a folder; a work folder refuses other settings."""
    for i in range(30):
        (tmp_path / "docs" / f"n{i}.txt").parent.mkdir(exist_ok=True)
        (tmp_path / "docs" / f"n{i}.txt").write_text(f"note {i}\n" * 10)
    rep = Reproduction(PROFILES["quick"], tmp_path / "out", tmp_path / "work", corpus=tmp_path / "docs", progress=False)
    train, held = rep._corpus("train"), rep._corpus("heldout")
    assert len(train) + len(held) == 30 and all(p.endswith(".txt") for p in train.paths)
    with pytest.raises(ValueError, match="other settings \\(seed\\)"):
        Reproduction(PROFILES["quick"], tmp_path / "out", tmp_path / "work", seed=1, corpus=tmp_path / "docs")
