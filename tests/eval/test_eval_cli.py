"""`e2llm-lite eval` end to end on a tiny byte-level model saved to a temporary folder."""
import json

import pytest
import torch

from e2llm_lite import cli
from e2llm_lite.data import ByteTokenizer
from e2llm_lite.eval.cli import load_model, parse_g
from e2llm_lite.eval.perplexity import perplexity
from e2llm_lite.models import tiny_model

TEXTS = [
    "def f(x):\n    return x * 2\n" * 8,
    "class A:\n    pass\n" * 10,
    "import os\nprint(os.getcwd())\n" * 7,
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    model = tiny_model(vocab_size=256, hidden_size=32, num_layers=2, num_heads=2, base_window=32, seed=5, initializer_range=0.2)
    model.save_pretrained(root / "model", safe_serialization=True)
    (root / "data").mkdir()
    for i, t in enumerate(TEXTS):
        (root / "data" / f"doc{i}.txt").write_text(t)
    return root, model


def test_ppl_task_writes_table_and_matches_the_library(saved, capsys):
    root, model = saved
    out = root / "ppl_out"
    rc = cli.main([
        "eval", "--model", str(root / "model"), "--task", "ppl", "--lengths", "32,64", "--stride", "16",
        "--g", "none,auto", "--data", str(root / "data"), "--exts", ".txt", "--split", "all", "--n-docs", "3",
        "--no-progress", "--out", str(out),
    ])
    assert rc == 0
    grid = json.loads((out / "ppl.json").read_text())
    assert grid["rows"] == ["model (g=1)", "model (g=auto)"] and grid["lengths"] == [32, 64]
    assert grid["g"] == [[1.0, 1.0], [1.0, 2.0]] and grid["meta"]["n_docs"] == 3
    docs = [torch.tensor(ByteTokenizer().encode(t)[:64]) for t in TEXTS]  # the first 64 tokens of each file
    ref = perplexity(model, docs, 64, 16, g="auto")
    assert grid["ppl"][1][1] == pytest.approx(ref.ppl, rel=1e-5)
    assert (out / "ppl.md").read_text().startswith("| model | 32 | 64 |")
    assert (out / "ppl.png").is_file() and (out / "eval_args.json").is_file()
    assert "| model (g=auto) |" in capsys.readouterr().out


def test_passkey_task_writes_heatmap(saved, capsys):
    root, _ = saved
    out = root / "pk_out"
    rc = cli.main([
        "eval", "--model", str(root / "model"), "--task", "passkey", "--style", "miniature", "--lengths", "64",
        "--depths", "0,1", "--n-per-cell", "2", "--data", str(root / "data"), "--exts", ".txt", "--split", "all",
        "--no-progress", "--out", str(out),
    ])
    assert rc == 0
    grid = json.loads((out / "passkey.json").read_text())
    assert grid["style"] == "miniature" and grid["g"] == [2.0] and len(grid["accuracy"]) == 2
    assert (out / "passkey.csv").read_text().count("\n") == 3 and (out / "passkey.png").is_file()
    assert "| 100% |" in capsys.readouterr().out


def test_bad_arguments():
    assert parse_g("auto,none,4") == ["auto", None, 4.0]
    with pytest.raises(Exception, match="got '0.5'"):
        parse_g("0.5")
    with pytest.raises(SystemExit):  # argparse rejects a depth outside [0, 1]
        cli.main(["eval", "--model", "x", "--task", "passkey", "--lengths", "64", "--depths", "0,1.5"])
    with pytest.raises(ValueError, match="not a local folder and the Hub is offline"):
        load_model("no-such-org/no-such-model")


def test_state_dict_file_on_a_base_folder(tmp_path, saved):
    """`--model run.safetensors --base FOLDER`: fine-tuned weights as `e2llm-lite reproduce` writes them."""
    from safetensors.torch import save_file

    from e2llm_lite.data import train_bpe
    from e2llm_lite.train.pretrain import save_base

    root, _ = saved
    tok = train_bpe(TEXTS, vocab_size=300)
    base = tiny_model(vocab_size=tok.vocab_size, hidden_size=32, num_layers=2, num_heads=2, base_window=32, seed=6)
    save_base(base, tok, tmp_path / "base", {"note": "test"})
    tuned = tiny_model(vocab_size=tok.vocab_size, hidden_size=32, num_layers=2, num_heads=2, base_window=32, seed=7)
    save_file({k: v.contiguous() for k, v in tuned.state_dict().items()}, str(tmp_path / "e2.safetensors"))
    model, tok2 = load_model(str(tmp_path / "e2.safetensors"), base=str(tmp_path / "base"))
    assert tok2.encode(TEXTS[0]) == tok.encode(TEXTS[0])
    ids = torch.tensor([tok.encode(TEXTS[1])[:40]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, tuned(ids).logits, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(model(ids).logits, base(ids).logits.float(), atol=1e-3)
    out = tmp_path / "out"
    assert cli.main(["eval", "--model", str(tmp_path / "e2.safetensors"), "--base", str(tmp_path / "base"),
                     "--task", "ppl", "--lengths", "16", "--data", str(root / "data"), "--exts", ".txt",
                     "--split", "all", "--n-docs", "2", "--no-progress", "--out", str(out)]) == 0
    assert json.loads((out / "ppl.json").read_text())["rows"] == ["e2 (g=auto)"]


def test_doc_tokens_give_several_windows_per_document(saved, capsys):
    root, model = saved
    res = {}
    for conv in ("new", "all"):
        out = root / f"conv_{conv}"
        assert cli.main(["eval", "--model", str(root / "model"), "--task", "ppl", "--lengths", "32", "--stride", "8",
                         "--doc-tokens", "64", "--convention", conv, "--g", "none", "--data", str(root / "data"),
                         "--exts", ".txt", "--split", "all", "--n-docs", "3", "--no-progress", "--out", str(out)]) == 0
        res[conv] = json.loads((out / "ppl.json").read_text())
    assert res["new"]["n_tokens"] == [[3 * 63]] and res["all"]["n_tokens"] == [[3 * 5 * 31]]
    docs = [torch.tensor(ByteTokenizer().encode(t)[:64]) for t in TEXTS]
    assert res["all"]["ppl"][0][0] == pytest.approx(perplexity(model, docs, 32, 8, g=None, convention="all").ppl, rel=1e-5)
    capsys.readouterr()
    assert cli.main(["eval", "--model", str(root / "model"), "--lengths", "32", "--doc-tokens", "16",
                     "--data", str(root / "data"), "--exts", ".txt", "--split", "all", "--no-progress"]) == 2
    assert "e2llm-lite eval: error: --doc-tokens must be >= max(lengths) = 32, got 16" in capsys.readouterr().err
