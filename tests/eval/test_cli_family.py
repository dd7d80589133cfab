"""`e2llm-lite eval --family linear|ntk|yarn`: each length's g applied by the family, recorded in the JSON."""
import json

import pytest
import torch

from e2llm_lite import cli, hf
from e2llm_lite.data import ByteTokenizer
from e2llm_lite.eval.cli import family_retrieval_grid
from e2llm_lite.eval.perplexity import perplexity
from e2llm_lite.eval.retrieval import retrieval_grid
from e2llm_lite.models import tiny_model

L = 32
TEXTS = [
    "def f(x):\n    return x * 2\n" * 8,
    "class A:\n    pass\n" * 10,
    "import os\nprint(os.getcwd())\n" * 7,
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("family")
    model = tiny_model(vocab_size=256, hidden_size=32, num_layers=2, num_heads=2, base_window=L, seed=5,
                       initializer_range=0.2)
    model.save_pretrained(root / "model", safe_serialization=True)
    (root / "data").mkdir()
    for i, t in enumerate(TEXTS):
        (root / "data" / f"doc{i}.txt").write_text(t)
    return root, model


def _ppl(root, family: str, g: str = "auto") -> dict:
    out = root / f"ppl_{family}_{g}"
    rc = cli.main(["eval", "--model", str(root / "model"), "--task", "ppl", "--lengths", f"{L},{2 * L}", "--g", g,
                   "--family", family, "--data", str(root / "data"), "--exts", ".txt", "--split", "all",
                   "--n-docs", "3", "--no-progress", "--out", str(out)])
    assert rc == 0
    return json.loads((out / "ppl.json").read_text())


def test_yarn_ppl_differs_from_linear_above_L_and_matches_the_library(saved, capsys):
    root, model = saved
    lin, yarn = _ppl(root, "linear"), _ppl(root, "yarn")
    assert lin["g"] == yarn["g"] == [[1.0, 2.0]]
    assert lin["meta"]["family"] == "linear" and yarn["meta"]["family"] == "yarn" and yarn["meta"]["base_window"] == L
    assert yarn["rows"] == ["model (g=auto, yarn)"] and lin["rows"] == ["model (g=auto)"]
    assert yarn["ppl"][0][0] == lin["ppl"][0][0]  # length <= L: g = 1, every family is the identity
    assert abs(yarn["ppl"][0][1] - lin["ppl"][0][1]) > 1e-3 * lin["ppl"][0][1]  # g = 2: different frequencies
    docs = [torch.tensor(ByteTokenizer().encode(t)[: 2 * L]) for t in TEXTS]
    with hf.rope_scale(model, 2, family="yarn", base_window=L):
        ref = perplexity(model, docs, 2 * L, g=None)
    assert yarn["ppl"][0][1] == pytest.approx(ref.ppl, rel=1e-6)
    # linear keeps the evaluator's own g path, number for number
    assert lin["ppl"][0][1] == pytest.approx(perplexity(model, docs, 2 * L, g="auto").ppl, rel=1e-6)
    assert "| model (g=auto, yarn) |" in capsys.readouterr().out


def test_g1_rows_agree_across_families(saved):
    root, _ = saved
    assert _ppl(root, "ntk", "none")["ppl"] == _ppl(root, "linear", "none")["ppl"]


def test_passkey_records_the_family_and_matches_the_library(saved):
    root, model = saved
    out = root / "pk_yarn"
    rc = cli.main(["eval", "--model", str(root / "model"), "--task", "passkey", "--style", "miniature",
                   "--lengths", f"{L},{2 * L}", "--depths", "0,1", "--n-per-cell", "2", "--family", "yarn",
                   "--data", str(root / "data"), "--exts", ".txt", "--split", "all", "--no-progress", "--out", str(out)])
    assert rc == 0
    grid = json.loads((out / "passkey.json").read_text())
    assert grid["family"] == "yarn" and grid["g"] == [1.0, 2.0] and grid["lengths"] == [L, 2 * L]
    assert (out / "passkey.csv").read_text().count("\n") == 5
    # per length = the evaluator inside rope_scale(yarn); linear = retrieval_grid's own g
    from e2llm_lite import data as D

    tok, filler = ByteTokenizer(), D.filler_text(D.Corpus(TEXTS, [], "x", "all"))
    with hf.rope_scale(model, 2, family="yarn", base_window=L):
        ref = retrieval_grid(model, tok, filler, [2 * L], [0.0, 1.0], 2, 0, g=None, style="miniature")
    mine = family_retrieval_grid(model, tok, filler, [L, 2 * L], [0.0, 1.0], 2, 0, "auto", "miniature", family="yarn")
    assert [row[1] for row in mine["accuracy"]] == [row[0] for row in ref["accuracy"]]
    lin = family_retrieval_grid(model, tok, filler, [L, 2 * L], [0.0, 1.0], 2, 0, "auto", "miniature")
    assert lin["accuracy"] == retrieval_grid(model, tok, filler, [L, 2 * L], [0.0, 1.0], 2, 0, g="auto",
                                             style="miniature")["accuracy"]


def test_yarn_on_a_linear_scaled_checkpoint_is_one_line(saved, tmp_path, capsys):
    """ntk / yarn need rope_type='default': a save_for_scale export is refused with the project's one-line error."""
    root, model = saved
    hf.save_for_scale(model, tmp_path / "g2", 2)
    capsys.readouterr()  # transformers' own progress bar of the save
    rc = cli.main(["eval", "--model", str(tmp_path / "g2"), "--tokenizer", "bytes", "--lengths", str(4 * L),
                   "--base-window", str(L), "--family", "yarn", "--data", str(root / "data"), "--exts", ".txt",
                   "--split", "all", "--n-docs", "1", "--doc-tokens", str(4 * L), "--no-progress"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]  # other lines: transformers' loading bar
    assert rc == 2 and len(errors) == 1 and "Traceback" not in err
    assert errors[0].startswith("e2llm-lite eval: error: ") and "rope_type='default'" in errors[0]


def test_bad_family_names_the_value_and_the_choices(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["eval", "--model", "x", "--lengths", "64", "--family", "banana"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("e2llm-lite eval: error: ")
    assert "'banana'" in err[0] and all(f in err[0] for f in ("linear", "ntk", "yarn"))
