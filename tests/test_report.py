"""lsrs.report on a synthetic results folder: every table in md/csv/tex with the paper's rows and
columns, every figure written, scorecard verdicts that follow the data, missing inputs as notes, and
the `lsrs report` commands. Made-up numbers only; runs in seconds."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lsrs import report
from lsrs.cli import app
from lsrs.pipeline.params import load_params
from lsrs.pipeline.report_spec import report_spec
from lsrs.report.claims import compare_rows

ROOT = Path(__file__).resolve().parents[1]
SCALES = 7  # params.yaml's mini tokenizer
M_FID = {2: 1.90, 4: 1.80, 8: 1.75, 16: 1.70, 32: 1.68, 64: 1.67, 128: 1.60, 256: 1.75, 512: 1.80, 1024: 1.85}
ST_FID = {1: 2.30, 2: 1.68, 3: 1.75, 4: 1.80, 5: 1.85, 6: 1.90, 7: 1.95}
BASE_FID, HALF = 2.0, 0.02  # plain VAR FID; half-width of every paired interval
FLEX_FID = 2.23  # plain FlexVAR FID


def sweep_row(family: str, var: str, scorer: str | None, M: int = 1, ST: int = 1, k: int = 1, fid: float = BASE_FID,
              base: float = BASE_FID, half: float = HALF, only_scale: int | None = None) -> dict:
    mean_diff2 = 0.15 * fid
    trace = fid - mean_diff2
    diff = 0.0 if scorer is None else fid - base
    return {"family": family, "run": f"{scorer or var}_M{M}_ST{ST}", "var": var, "scorer": scorer, "M": M, "ST": ST,
            "k": k, "selection": "none" if scorer is None else ("greedy" if k == 1 else "topk"), "temperature": 1.0,
            "fid": fid, "is": 10 - fid, "precision": 0.8, "recall": 0.6, "sfid": 4 * fid, "fid_mean_diff2": mean_diff2,
            "fid_trace_term": trace, "fid_tr_sigma_ref": 180.0, "fid_tr_sigma_gen": 170.0 + fid,
            "fid_tr_sqrt_x2": 350.0 + fid - trace, "seconds_per_image": 0.01 * (1 + M / 100), "count": 500,
            "fid_diff": diff, "fid_diff_low": diff - (0 if scorer is None else half),
            "fid_diff_high": diff + (0 if scorer is None else half), "only_scale": only_scale,
            "fid_diff_se": half / 1.96, "var_images": (half / 1.96) ** 2, "tau2": 0.0, "replicates": 3,
            "replicate_deltas": "" if scorer is None else f"{diff:.4f} {diff - half:.4f} {diff + half:.4f}"}


def sweeps(m_fid: dict = M_FID, half: float = HALF) -> dict[str, list[dict]]:
    base = sweep_row("x", "d4", None)
    fam = {
        "m_st2": [sweep_row("m_st2", "d4", "d4-pairwise", M=m, ST=2, fid=f, half=half) for m, f in m_fid.items()],
        "st_m32": [sweep_row("st_m32", "d4", "d4-pairwise", M=32, ST=st, fid=f, half=half) for st, f in ST_FID.items()],
        "m_st1": [sweep_row("m_st1", "d4", "d4-pairwise", M=m, ST=1, fid=BASE_FID - 0.1 + m / 100)
                  for m in (2, 4, 8, 16, 32, 64)],
        "loss": [sweep_row("loss", "d4", "d4-pointwise", M=m, ST=2, fid=m_fid.get(m, 1.8) + 0.05)
                 for m in (4, 8, 16, 32)],
        "topk": [sweep_row("topk", "d4", "d4-pairwise", M=m, ST=2, k=k, fid=m_fid.get(m, 1.7) + 0.01)
                 for m in (128, 256) for k in (2, 4, 8, 16)],
        "first_scale": [sweep_row("first_scale", "d4", "d4-nofirst", M=m, ST=2, fid=m_fid.get(m, 1.7) + 0.001)
                        for m in (4, 32)],
        "depth": [sweep_row("depth", "d2", None, fid=3.0, base=3.0)] +
                 [sweep_row("depth", "d2", "d2-pairwise", M=m, ST=2, fid=3.0 - 0.1 * np.log2(m), base=3.0)
                  for m in (4, 128)],
    }
    fam["attribution"] = [sweep_row("attribution", "d4", "d4-pairwise", M=32, fid=BASE_FID - 0.05 * k, only_scale=k)
                          for k in range(2, SCALES + 1)]
    flex_base = sweep_row("x", "flexvar", None, fid=FLEX_FID, base=FLEX_FID)
    fam["flexvar_attribution"] = [sweep_row("flexvar_attribution", "flexvar", "flexvar", M=4, fid=FLEX_FID - 0.02 * k,
                                            base=FLEX_FID, only_scale=k) for k in range(2, SCALES + 1)]
    fam["flexvar_m_st2"] = [sweep_row("flexvar_m_st2", "flexvar", "flexvar", M=m, ST=2, fid=FLEX_FID - 0.1 * np.log2(m),
                                      base=FLEX_FID, half=half) for m in (2, 4, 8, 16, 32)]
    fam["flexvar_st_m4"] = [sweep_row("flexvar_st_m4", "flexvar", "flexvar", M=4, ST=st, fid=FLEX_FID - 0.1,
                                      base=FLEX_FID, half=half) for st in range(1, SCALES + 1)]
    return {name: rows if name == "depth" else [dict(flex_base if name.startswith("flexvar") else base, family=name)]
            + rows for name, rows in fam.items()}


def analysis_entry(scorer: str, var: str, accs: list[float], without_first: bool = False,
                   loss: str = "pairwise") -> dict:
    rng = np.random.default_rng(0)
    per_scale = []
    for s, acc in enumerate(accs, 1):
        real, gen = rng.normal(1.0, 1, 200), rng.normal(-1.0, 1, 200)
        edges = np.histogram_bin_edges(np.concatenate([real, gen]), bins=20)
        hr, hg = (np.histogram(x, edges)[0] / len(x) for x in (real, gen))
        per_scale.append({"scale": s, "val_acc": acc, "val_loss": 0.7 - 0.4 * (acc - 0.5), "mean_real": 1.0,
                          "mean_generated": -1.0, "gap": 2.0 + acc, "kl": 1.5, "bin_edges": edges.tolist(),
                          "hist_real": hr.tolist(), "hist_generated": hg.tolist()})
    return {"scorer": scorer, "var": var, "loss": loss, "without_first_scale": without_first, "real_maps": 200,
            "generated_maps": 200, "per_scale": per_scale}


D4_ACC = [0.52, 0.76, 0.78, 0.77, 0.80, 0.82, 0.85]
D2_ACC = [0.53, 0.86, 0.88, 0.87, 0.90, 0.92, 0.95]  # the smaller VAR: the scorer is more accurate


def write_results(root: Path, m_fid: dict = M_FID, half: float = HALF, main_delta: float = -0.2) -> dict:
    """A synthetic metrics/ folder, run folder with grid PNGs, and params.yaml; returns the paths."""
    metrics, runs = root / "metrics", root / "runs" / "mini"
    (metrics / "sweeps").mkdir(parents=True)
    for name, rows in sweeps(m_fid, half).items():
        pd.DataFrame(rows).to_csv(metrics / "sweeps" / f"{name}.csv", index=False)
    keys = ("fid", "is", "precision", "recall", "sfid", "fid_mean_diff2", "fid_trace_term", "seconds_per_image")
    base = sweep_row("main", "d4", None)
    lsrs = sweep_row("main", "d4", "d4-pairwise", M=32, ST=2, fid=BASE_FID + main_delta)
    (metrics / "main.json").write_text(json.dumps({
        "M": 32, "ST": 2, "schedule": [1] + [32] * (SCALES - 1), "var": "d4", "scorer": "d4-pairwise", "images": 2000,
        "baseline": {k: base[k] for k in keys}, "lsrs": {k: lsrs[k] for k in keys},
        "fid_diff": {"delta": main_delta, "low": main_delta - 0.05, "high": main_delta + 0.05,
                     "share_not_better": 0.0, "n_boot": 200}}))
    (metrics / "scorer_analysis.json").write_text(json.dumps([
        analysis_entry("d4-pairwise", "d4", D4_ACC),
        analysis_entry("d4-pointwise", "d4", D4_ACC, loss="pointwise"),
        analysis_entry("d4-nofirst", "d4", [0.6] + [a + 0.001 for a in D4_ACC[1:]], without_first=True),
        analysis_entry("d2-pairwise", "d2", D2_ACC)]))
    pd.DataFrame([{"M": m, "ST": 2, "batch_size": 24, "seconds": 1 + m / 100, "seconds_std": 0.01,
                   "peak_memory_mib": 600 + m, "device": "cpu", "repeats": 3, "relative_time": 1 + m / 100}
                  for m in (1, 4, 16, 64, 256, 1024)]).to_csv(metrics / "cost.csv", index=False)
    write_grids(runs / "figures")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    return {"metrics": metrics, "runs": runs, "params": root / "params.yaml"}


def write_grids(folder: Path, rows: int = 2) -> None:
    """Tiny PNGs in torchvision's grid layout (8x8 tiles, 1 px padding) and their JSON descriptions."""
    from matplotlib.image import imsave

    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name, ncol in (("grid_M", 4), ("grid_ST", 4), ("random_scales", SCALES + 1)):
        imsave(folder / f"{name}.png", rng.random((rows * 9 + 1, ncol * 9 + 1, 3)))
    for name, cols in (("grid_M", [{"M": m, "ST": 2} for m in (1, 4, 32, 256)]),
                       ("grid_ST", [{"M": 32, "ST": s} for s in (1, 2, 4, 7)])):
        (folder / f"{name}.json").write_text(json.dumps({"rows": list(range(rows)), "columns": cols, "seed": 0}))


def spec(params_file: Path) -> report.ReportSpec:
    """The report's view of a params.yaml, built the way the stage and the CLI build it."""
    return report.ReportSpec.from_dict(report_spec(load_params(params_file)))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    paths = write_results(tmp_path_factory.mktemp("results"))
    return report.load_results(spec(paths["params"]), paths["metrics"], paths["runs"]), paths


def tables_by_key(res) -> dict[str, report.Table]:
    return {t.key: t for t in report.build_tables(res)}


def test_every_table_written_in_three_formats(results, tmp_path):
    res, _ = results
    report.write_tables(res, tmp_path, log=lambda _: None)
    for key in report.TABLE_INFO:
        for ext in ("md", "csv", "tex"):
            assert (tmp_path / f"{key}.{ext}").stat().st_size > 0, f"{key}.{ext}"
    tex = (tmp_path / "table05.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and "FID$\\downarrow$" in tex
    assert (tmp_path / "table05.md").read_text().startswith("### Table 5")
    csv = pd.read_csv(tmp_path / "table07.csv")
    assert list(csv.columns[:6]) == ["M", "FID", "mean_diff²", "trace_term", "Tr(Σg)", "2Tr((ΣrΣg)^1/2)"]
    assert not res.missing


def test_tables_have_the_papers_rows_and_columns(results):
    res, _ = results
    t = tables_by_key(res)
    t5 = t["table05"].display
    assert list(t5.columns[:4]) == ["M", "FID↓", "IS↑", "sFID↓"]
    assert list(t5["M"]) == ["—"] + [str(m) for m in M_FID]
    assert t5.loc[t5["M"] == "128", report.CI].item() == "−0.400 [−0.420, −0.380]"
    assert t5.loc[t5["M"] == "2", "source"].item() == "this run (mini, 500 images)"
    t6 = t["table06"].display
    assert list(t6.columns[:4]) == ["ST", "FID↓", "IS↑", "sFID↓"]
    assert list(t6["ST"]) == ["—"] + [str(s) for s in ST_FID]
    t7 = t["table07"]
    assert list(t7.display.columns[:6]) == ["M", "FID", "mean_diff²", "trace_term", "Tr(Σg)", "2Tr((ΣrΣg)^1/2)"]
    assert list(t7.display["M"])[:2] == ["1", "2"] and "Tr(Σr) = 180.000" in t7.notes[0]
    t3 = t["table03"].display
    assert list(t3.columns) == ["M", "—", "2", "4", "8", "16", "32", "64"] and t3["M"][0] == "FID"
    assert t3["2"][0] == "1.920 (−0.080)"
    t2 = t["table02"].display
    assert list(t2.columns[:7]) == ["Inference Model", "Pointwise FID↓", "Pointwise IS↑", "Pointwise sFID↓",
                                    "Pairwise FID↓", "Pairwise IS↑", "Pairwise sFID↓"]
    assert list(t2["Inference Model"]) == ["VAR-d4", "+ LSRS M=4", "+ LSRS M=8", "+ LSRS M=16", "+ LSRS M=32"]
    for key, m in (("table08", 128), ("table09", 256)):
        assert f"M = {m}" in t[key].title and list(t[key].display["k"]) == ["1", "2", "4", "8", "16"]
        assert list(t[key].display.columns[:3]) == ["k", "FID", "IS"]
    t10 = t["table10"].display
    assert list(t10.columns) == ["scale", "w first scale", "w/o first scale", "change"]
    assert list(t10["scale"]) == [str(s) for s in range(1, SCALES + 1)]
    assert t10["w first scale"][0] == "52.0%" and t10["w/o first scale"][0] == "—" and t10["change"][1] == "+0.1%"
    assert list(t["table10b"].display["M"]) == ["4", "32"]
    t1 = t["table01"].display
    lit = pd.read_csv(report.LITERATURE)
    assert list(t1["Model"][:len(lit)]) == list(lit["model"])
    measured = t1[t1["source"].str.startswith("this run")]
    assert list(measured["Model"]) == ["VAR-d4 (main run)", "+ LSRS M=32, ST=2 (main run)", "VAR-d4 (m_st2 sweep)",
                                       "+ LSRS M=4, ST=2", "+ LSRS M=128, ST=2", "VAR-d2 (depth sweep)",
                                       "+ LSRS M=4, ST=2", "+ LSRS M=128, ST=2", "FlexVAR-d4 (flexvar_m_st2 sweep)",
                                       "+ LSRS M=2, ST=2 (r_k scorer)", "+ LSRS M=4, ST=2 (r_k scorer)"]
    assert list(measured["Step"].iloc[-3:]) == ["7", "7", "7"]  # flexvar.patch_nums
    assert measured[report.CI].iloc[-1] == "−0.200 [−0.220, −0.180]"
    assert measured["source"].iloc[0] == "this run (mini, 2000 images)"
    assert measured[report.CI].iloc[1] == "−0.200 [−0.250, −0.150]"
    assert list(t["table04"].display["Model"])[:1] == ["VAR-d2 (depth sweep)"]


def verdicts(res) -> dict[str, str]:
    return {c.claim: c.verdict for c in report.scorecard(res)}


def test_scorecard_agrees_with_paper_shaped_data(results):
    res, _ = results
    cards = report.scorecard(res)
    assert len(cards) == len(report.CLAIMS) == 11
    assert [c.verdict for c in cards] == ["agrees"] * 11, [(c.claim, c.verdict, c.evidence) for c in cards]
    assert "plain FlexVAR FID 2.230" in cards[-1].evidence and "M=4: FID 2.030" in cards[-1].evidence
    shape = cards[2]
    assert "lowest FID at M=128: FID 1.600" in shape.evidence and "M=1024: FID 1.850" in shape.evidence


def test_scorecard_follows_the_data(tmp_path):
    falling = {m: BASE_FID - 0.05 * i for i, m in enumerate(M_FID, 1)}  # FID keeps falling with M
    paths = write_results(tmp_path / "falling", m_fid=falling, main_delta=-0.02)
    v = [c.verdict for c in report.scorecard(report.load_results(spec(paths["params"]), paths["metrics"],
                                                                  paths["runs"]))]
    assert v[0] == "undecided"  # main run: interval [-0.07, +0.03] contains 0
    assert v[2] == "disagrees"  # the lowest FID is at the largest M
    noisy = write_results(tmp_path / "noisy", half=1.0)  # every interval contains 0
    v = [c.verdict for c in report.scorecard(report.load_results(spec(noisy["params"]), noisy["metrics"],
                                                                  noisy["runs"]))]
    assert v[1] == v[2] == v[3] == v[4] == "undecided"


def test_missing_inputs_become_notes(tmp_path):
    written = report.make_report(spec(ROOT / "params.yaml"), tmp_path / "none", tmp_path / "none", tmp_path / "out",
                                 log=lambda _: None)
    assert all(p.is_file() for p in written)
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "## Missing inputs" in readme and "main.json" in readme
    assert readme.count("**not measured**") == len(report.CLAIMS)
    assert "not measured" in (tmp_path / "out" / "table05.md").read_text()


def test_cli_writes_figures_tables_and_readme(results, tmp_path):
    _, paths = results
    args = ["--metrics", str(paths["metrics"]), "--runs", str(paths["runs"]), "--params", str(paths["params"]),
            "--out", str(tmp_path)]
    out = CliRunner().invoke(app, ["report", "figures", *args])
    assert out.exit_code == 0, out.output
    for stem in report.FIGURES:
        for ext in ("png", "pdf"):
            assert (tmp_path / f"{stem}.{ext}").stat().st_size > 1000, f"{stem}.{ext}"
    readme = (tmp_path / "README.md").read_text()
    assert "not built yet (`lsrs report tables`)" in readme
    out = CliRunner().invoke(app, ["report", "tables", *args])
    assert out.exit_code == 0, out.output
    readme = (tmp_path / "README.md").read_text()
    assert "not built yet" not in readme and "[md](table01.md)" in readme and "[png](fig03_ablation_M_ST.png)" in readme
    assert sum(line.startswith("| ") and "**" in line for line in readme.splitlines()) == len(report.CLAIMS)
    bad = CliRunner().invoke(app, ["report", "all", *args[:-4], "--params", str(tmp_path / "missing.yaml")])
    assert bad.exit_code == 2 and "not found" in bad.output


def test_power_solves_the_variance_model():
    """Var = a/N + tau2/R: the N it returns meets the half-width; tau2 alone over the limit is unreachable."""
    need = report.power(n=2000, r=3, var_images=1.0, tau2=0.3, half_target=2.0)
    a, z = 2000 * 1.0, report.Z95
    assert z * math.sqrt(a / need["n_needed"] + 0.3 / 3) <= 2.0 < z * math.sqrt(a / (need["n_needed"] - 1) + 0.3 / 3)
    assert need["n_needed_r5"] < need["n_needed"] and need["r_needed"] == 1
    hopeless = report.power(n=2000, r=3, var_images=0.1, tau2=4.0, half_target=1.0)
    assert hopeless["n_needed"] is None and hopeless["r_needed"] == math.ceil(4.0 / (1.0 / z) ** 2)


def test_equivalence_compare():
    a = pd.Series({"fid_diff": -1.0, "fid_diff_se": 0.1})
    assert compare_rows(a, pd.Series({"fid_diff": -1.05, "fid_diff_se": 0.1}), 100.0) == "equivalent"
    assert compare_rows(a, pd.Series({"fid_diff": 0.5, "fid_diff_se": 0.1}), 100.0) == "better"
    assert compare_rows(a, pd.Series({"fid_diff": -1.2, "fid_diff_se": 2.0}), 100.0) == "undecided"


def test_spec_is_plain_data_and_names_bad_keys():
    """report_spec's dict survives JSON; an unknown, missing or mistyped key is a ValueError naming it."""
    d = report_spec(load_params(ROOT / "params.yaml"))
    s = report.ReportSpec.from_dict(json.loads(json.dumps(d)))
    assert s == report.ReportSpec.from_dict(d) and s.profile == "mini" and isinstance(s.ablations.grids.M, tuple)
    with pytest.raises(ValueError, match=r"^var\.colour: unknown key"):
        report.ReportSpec.from_dict({**d, "var": {**d["var"], "colour": 1}})
    with pytest.raises(ValueError, match=r"^evaluation\.n_boot: missing key"):
        report.ReportSpec.from_dict({**d, "evaluation": {"mcse_target": 0.1}})
    with pytest.raises(ValueError, match=r"^num_scales: expected int"):
        report.ReportSpec.from_dict({**d, "num_scales": "7"})


def test_a_renamed_sweep_still_feeds_its_tables(tmp_path):
    """The report finds sweeps by their role, not their name: rename m_st2 and st_m32 (params and
    results file) and Tables 5 and 6 and the M/ST claims read the same rows."""
    import yaml

    paths = write_results(tmp_path)
    params = yaml.safe_load(paths["params"].read_text())
    sw = params["ablations"]["sweeps"]
    sw["my_m_curve"], sw["my_st_curve"] = sw.pop("m_st2"), sw.pop("st_m32")
    paths["params"].write_text(yaml.safe_dump(params, sort_keys=False))
    for old, new in (("m_st2", "my_m_curve"), ("st_m32", "my_st_curve")):
        (paths["metrics"] / "sweeps" / f"{old}.csv").rename(paths["metrics"] / "sweeps" / f"{new}.csv")
    renamed = report.load_results(spec(paths["params"]), paths["metrics"], paths["runs"])
    orig = write_results(tmp_path / "orig")
    original = report.load_results(spec(orig["params"]), orig["metrics"], orig["runs"])
    assert not renamed.missing
    new_tables, old_tables = tables_by_key(renamed), tables_by_key(original)
    for key in ("table05", "table06", "table07"):
        assert new_tables[key].display.equals(old_tables[key].display), key
    assert verdicts(renamed) == verdicts(original)


def test_the_report_reads_every_role_the_params_know():
    from lsrs.pipeline.sweep_config import ROLES
    from lsrs.report.results import ROLES as REPORT_ROLES

    assert set(REPORT_ROLES) == set(ROLES)
