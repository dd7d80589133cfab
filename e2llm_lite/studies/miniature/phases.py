"""The miniature's measuring phases: Tables 3–5, the levers, Figs. 4–6, the families and every run's row.

A mixin of :class:`e2llm_lite.studies.miniature.reproduce.Reproduction` (the runner: data, fine-tunes, resume):
each phase reads the runner's fine-tuned models through its memoised ``ppl`` and writes
``results/<phase>.json`` and its figure. Kept apart from the runner so that each side reads on its own:
training here never happens, and the runner never decides what a table shows.
"""
from __future__ import annotations

from e2llm_lite.atomic_files import save_json
from e2llm_lite.scaling import FAMILIES

__all__ = ["GRID_TITLES", "MeasurePhases", "memo_key"]

#: titles of the perplexity grids (figures and markdown)
GRID_TITLES = {
    "table3": "Table 3 in miniature: perplexity vs evaluation length",
    "table3_levers": "Levers: more E² steps, denser small g (g = length / L)",
    "table4": "Table 4 in miniature: ablations (g = length / L)",
    "table5": "Table 5 in miniature: number of sink tokens (g = length / L)",
    "table_runs": "Every fine-tuning run of the study (perplexity; each run's own g rule and family)",
}


def memo_key(run: str, g, length: int, segments: str = "", family: str = "linear") -> str:
    """Key of one perplexity cell in the memo (linear keeps the keys of earlier runs)."""
    rule = g if family == "linear" else f"{g}@{family}"
    return f"{segments + '|' if segments else ''}{run}|{rule}|{length}"


def _k(n: int) -> str:
    return f"{n // 1024}K" if n % 1024 == 0 else str(n)


class MeasurePhases:
    """The measuring phases (needs the runner's ``p``, ``L``, ``ppl``, ``memo``, ``models``, ``base``, ``tok``,
    ``filler``, ``segments``, ``fig5_segments``, ``runs``, ``times``, ``work``, ``results`` and ``figures``)."""

    def grid(self, rows: dict[str, tuple], stem: str, title: str) -> dict:
        """rows: label -> (run, g rule, max length or None). Writes results/<stem>.json, figures/<stem>.md/png."""
        from e2llm_lite.eval.perplexity import PplGrid

        lengths = [k * self.L for k in self.p.eval_mults]
        ppl, gs, ns = [], [], []
        for label, (run, g, max_len, *fam) in rows.items():  # optional 4th item: the scale family
            fam = fam[0] if fam else "linear"
            rp, rg, rn = [], [], []
            for n in lengths:
                if max_len is not None and n > max_len:
                    rp.append(None), rg.append(None), rn.append(None)
                    continue
                rp.append(self.ppl(run, g, n, family=fam))
                m = self.memo[memo_key(run, g, n, "", fam)]
                rg.append(m["g"]), rn.append(m["n_tokens"])
            ppl.append(rp), gs.append(rg), ns.append(rn)
        grid = PplGrid(list(rows), lengths, ppl, gs, ns, None, "new",  # stride = window - 1 (see ppl)
                       {"segments": len(self.segments), "segment_tokens": len(self.segments[0]), "L": self.L})
        from e2llm_lite.studies.miniature.plots import save_grid

        save_grid(grid, self.results / f"{stem}.json", self.figures / stem, title)
        return grid.to_dict()

    # --- phases: tables and figures ------------------------------------------------------------

    def table3(self) -> dict:
        p, L = self.p, self.L
        rows = {
            "base (no fine-tuning)": ("base", None, None),
            f"none, continued at {L} (g = 1)": ("none", None, None),
            f"PI at {p.pi_scale * L} (g = {p.pi_scale})": ("pi", p.pi_scale, None),
            "E² (g = length / L)": ("e2", "auto", None),
        }
        for g in p.table3_g:
            rows[f"E²-{_k(g * L)} (g = {g})"] = ("e2", g, g * L)
        if p.harmonic_run:
            rows["E², P(g) ∝ 1/g (g = length / L)"] = ("e2-harmonic", "auto", None)
        return self.grid(rows, "table3", GRID_TITLES["table3"])

    def levers(self) -> dict:
        """Levers measured in the same run: more E² steps, a denser draw of small g (``table3_levers``)."""
        p = self.p
        rows = {f"none, continued at L ({p.ft_steps} steps)": ("none", None, None),
                f"E² ({p.ft_steps} steps)": ("e2", "auto", None),
                f"E² ({p.long_mult * p.ft_steps} steps)": ("e2-x3", "auto", None)}
        if p.harmonic_run:
            rows[f"E², P(g) ∝ 1/g ({p.ft_steps} steps)"] = ("e2-harmonic", "auto", None)
        return self.grid(rows, "table3_levers", GRID_TITLES["table3_levers"])

    def table4(self) -> dict:
        rows = {"E²": ("e2", "auto", None), "E² (no offset)": ("e2-no-offset", "auto", None),
                f"E² (fixed scale g = {self.p.fixed_scale})": ("e2-fixed-scale", "auto", None)}
        return self.grid(rows, "table4", GRID_TITLES["table4"])

    def table5(self) -> dict:
        rows = {f"{s} sinks": ("e2" if s == 4 else f"e2-sink{s}", "auto", None) for s in self.p.sinks}
        return self.grid(rows, "table5", GRID_TITLES["table5"])

    def fig5(self) -> dict:
        from e2llm_lite.studies.miniature.plots import plot_fig5

        L = self.L
        lengths = [k * L for k in self.p.fig5_mults]  # up to 2·L·G_max: past what the trained scales cover
        lines = {g: [self.ppl("e2", g, n, "fig5") for n in lengths] for g in self.p.unseen_g}
        res = {"lengths": lengths, "g_max": self.p.g_max, "ppl": {str(g): v for g, v in lines.items()},
               "auto": [self.ppl("e2", "auto", n, "fig5") for n in lengths],
               "segments": {"n": len(self.fig5_segments()), "tokens": int(len(self.fig5_segments()[0]))}}
        save_json(res, self.results / "fig5.json")
        plot_fig5(res, self.figures / "fig5.png")
        return res

    def fig4(self) -> dict:
        from e2llm_lite.studies.miniature.plots import plot_fig4

        long = self.work / "train" / "e2-x3.json"  # the e2 run continued (same first steps)
        hist = self._load(long if long.is_file() else self.work / "train" / "e2.json")["history"]
        keys = [f"ppl@{k * self.L}" for k in self.p.fig4_mults]
        pts = [{"step": 0, **self.memo.get("fig4_step0", {})}] if "fig4_step0" in self.memo else []
        pts += [{"step": h["step"], **{k: h[k] for k in keys}} for h in hist if keys[0] in h]
        loss = [[h["step"], h["loss"]] for h in hist]
        res = {"points": pts, "loss": loss, "keys": keys}
        save_json(res, self.results / "fig4.json")
        plot_fig4(res, self.figures / "fig4.png")
        return res

    def fig6(self) -> dict:
        from e2llm_lite.eval.retrieval import retrieval_grid
        from e2llm_lite.studies.miniature.plots import plot_fig6

        p, L = self.p, self.L
        specs = {"base": ("base", "auto"), "none": ("none", "auto"), f"PI (g = {p.pi_scale})": ("pi", p.pi_scale),
                 "E² (g = length / L)": ("e2", "auto")}
        out = {}
        for label, (run, g) in specs.items():
            model = self.base if run == "base" else self.models[run]
            key = f"fig6|{run}|{g}"
            if key not in self.memo:
                if run in ("base", "none"):
                    g_rule = None  # no scaling: plain extrapolation
                else:
                    g_rule = g
                grid = retrieval_grid(model, self.tok, self.filler, [k * L for k in p.pk_mults], list(p.pk_depths),
                                      n_per_cell=p.pk_per_cell, seed=self.seed, g=g_rule, base_window=L)
                self.memo[key] = grid
                save_json(self.memo, self.work / "ppl_memo.json")
            out[label] = self.memo[key]
        save_json(out, self.results / "fig6.json")
        plot_fig6(out, self.figures / "fig6.png")
        return out

    def families(self) -> dict:
        """Beyond the paper: E² trained and evaluated over each scale family, beside the control, PI and
        zero-shot NTK / YaRN on the base and the control (``table3_families``, with ratios per family)."""
        from e2llm_lite.atomic_files import atomic_write
        from e2llm_lite.studies.miniature.plots import plot_families
        from e2llm_lite.studies.miniature.report import families_markdown, family_ratios

        p, L = self.p, self.L
        fams = ("linear", *p.families)
        run_of = {"linear": "e2", **{f: f"e2-{f}" for f in p.families}}
        rows = {"base (no fine-tuning)": ("base", None, None),
                f"none, continued at {L} (g = 1)": ("none", None, None),
                f"PI at {p.pi_scale * L} (g = {p.pi_scale})": ("pi", p.pi_scale, None)}
        for f in fams:  # each E² run evaluated with its own family, g = length / L (§4.2.3)
            rows[f"E²-{f} (g = length / L)"] = (run_of[f], "auto", None, f)
        for f in fams:  # and at one fixed g, as the paper's E²-32K row
            rows[f"E²-{f} (g = {p.family_g})"] = (run_of[f], p.family_g, p.family_g * L, f)
        for who in ("base", "none"):  # the training-free peers
            for f in p.families:
                rows[f"{who} + {FAMILIES[f].label} zero-shot (g = length / L)"] = (who, "auto", None, f)
        title = "Beyond the paper: E² over RoPE scale families (perplexity vs evaluation length)"
        grid = self.grid(rows, "table3_families", title)
        wall = {f: self.times.get(f"finetune:{run_of[f]}") for f in fams}
        res = dict(grid, ratios=family_ratios(grid, L, p.pi_scale, fams, p.family_g), finetune_wall_s=wall,
                   runs={f: run_of[f] for f in fams})
        save_json(res, self.results / "table3_families.json")
        plot_families(res, self.figures / "table3_families.png")  # replaces grid()'s generic plot
        md_path = self.figures / "table3_families.md"  # written by grid(): append the ratios and verdicts
        atomic_write(md_path, md_path.read_text(encoding="utf-8") + "\n" + families_markdown(res, L) + "\n")
        return res

    def table_runs(self) -> dict:
        """Every run of the run list, one row each: its own g rule (``eval_g``) and family (``table_runs``)."""
        rows = {spec.row_label(): (spec.name, spec.eval_g, None, spec.family) for spec in self.runs}
        return self.grid(rows, "table_runs", GRID_TITLES["table_runs"])
