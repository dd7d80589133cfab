"""e2llm_lite.figure_files: the one figure saver (PNG atomically and without metadata, the data as JSON beside it,
by path or by name) and where figures go."""
import json
import os
import pathlib

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from e2llm_lite import figure_files  # noqa: E402


def _fig():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [1, 4, 2], marker="o")
    return fig


def test_save_figure_by_name_writes_png_and_json(tmp_path, monkeypatch):
    fig = _fig()
    png = figure_files.save_figure(fig, "test_fig", {"arr": np.arange(3), "t": torch.tensor([1.5]),
                                                     "n": np.int64(4), "nested": {2: (np.float32(0.5),)}},
                                   directory=tmp_path)
    assert png == tmp_path / "test_fig.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "test_fig.json").read_text())
    assert data == {"figure": "test_fig.png", "arr": [0, 1, 2], "t": [1.5], "n": 4, "nested": {"2": [0.5]}}
    assert oct(png.stat().st_mode & 0o777) == "0o644"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary files left"
    # without directory=, the name goes into figures_dir() ($E2LLM_FIGURES_DIR when set)
    monkeypatch.setenv(figure_files.ENV_FIGURES, str(tmp_path / "figs"))
    assert figure_files.save_figure(fig, "default", {}) == tmp_path / "figs" / "default.png"
    assert (tmp_path / "figs" / "default.json").is_file()


def test_save_figure_by_path_same_figure_same_bytes(tmp_path):
    fig = _fig()
    a = figure_files.save_figure(fig, tmp_path / "sub" / "a.png")  # folders are created
    b = figure_files.save_figure(fig, str(tmp_path / "b.png"))
    assert a == tmp_path / "sub" / "a.png" and a.read_bytes() == b.read_bytes()  # no date or software stamp
    assert b"Software" not in a.read_bytes() and not (tmp_path / "sub" / "a.json").exists()  # no data, no JSON
    figure_files.save_figure(fig, tmp_path / "c.png", {"x": [1, 2]})
    assert json.loads((tmp_path / "c.json").read_text()) == {"figure": "c.png", "x": [1, 2]}


def test_save_figure_rejects_names_that_are_paths(tmp_path):
    fig = _fig()
    for bad in ("../evil", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="plain file stem"):
            figure_files.save_figure(fig, bad, {}, directory=tmp_path)
    with pytest.raises(ValueError, match="directory="):
        figure_files.save_figure(fig, tmp_path / "x.png", directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_figures_dir_and_display_path(tmp_path, monkeypatch):
    here = str(pathlib.Path(__file__).resolve().parents[2])  # the repository root
    monkeypatch.chdir(os.path.join(here, "notebooks") if os.path.isdir(os.path.join(here, "notebooks")) else here)
    assert str(figure_files.repo_root()) == os.path.realpath(here)
    monkeypatch.delenv(figure_files.ENV_FIGURES, raising=False)
    assert figure_files.figures_dir(create=False) == figure_files.repo_root() / "figures"
    assert figure_files.display_path(figure_files.repo_root() / "figures" / "x.png") == "figures/x.png"
    monkeypatch.setenv(figure_files.ENV_FIGURES, str(tmp_path / "out"))
    assert figure_files.figures_dir() == tmp_path / "out" and (tmp_path / "out").is_dir()
    monkeypatch.chdir(tmp_path)
    assert figure_files.repo_root() is None
    assert figure_files.display_path(tmp_path / "out" / "y.png") == "out/y.png"
