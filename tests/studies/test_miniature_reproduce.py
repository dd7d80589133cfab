"""Tests for `e2llm-lite reproduce` (quick profile, run once per session into runs/quick)."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from e2llm_lite import cli
from e2llm_lite.data import passkey_rows as _passkey_rows
from e2llm_lite.studies.miniature.reproduce import PROFILES, Reproduction

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
    assert set(summary["runs"]) == {"none", "pi", "e2", "e2-no-offset", "e2-fixed-scale", "e2-sink0", "e2-sink2", "e2-sink6",
                                    "e2-harmonic", "e2-ntk", "e2-yarn", "e2-x3"}


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
