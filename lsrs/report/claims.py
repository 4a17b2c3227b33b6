"""The scorecard: each claim of the paper, this run's evidence for it and a verdict.

Evidence and verdict come from the loaded results only. A FID claim reads the paired ΔFID intervals:
"undecided" when they hold both readings (an interval contains 0, or two configurations' intervals
overlap), and a "no difference" claim is decided by an equivalence margin of ±EQUIVALENCE_PCT % of
the plain FID; a claim whose inputs are missing is "not measured".
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lsrs.report.formatting import _ci, _contains_zero, _count, _missing, _num, _pct, _signed, _var_label
from lsrs.report.power_table import MAIN_TARGET_PCT, Z95, power
from lsrs.report.results import (FLEX, Results, _analysis, _at, _base, _depth_scorers, _first_scale_pair,
                                 _flex_family, _rows, _scorer_entries, _val, sweep_of)
from lsrs.report.table1 import FLEX_TABLE1_M

NEAR_CHANCE = 0.1  # "accuracy near 0.5 at scale 1": within 0.5 +- this
FIRST_SCALE_PP = 0.5  # "removing the first scale changes accuracy by under 0.5 points"
EQUIVALENCE_PCT = 2.0  # "no difference" claims: equivalent when the difference's interval is within +- this % of FID


@dataclass(frozen=True)
class Claim:
    claim: str
    paper: str  # where the paper says it (and its reported numbers)
    evidence: str  # this run's numbers, all from the input files
    verdict: str  # agrees | disagrees | undecided (the interval holds both readings) | not measured


def _vs_zero(r, want_negative: bool = True) -> str:
    """Verdict of one paired ΔFID interval: beyond noise in the claimed direction, against it, or neither."""
    low, high = _val(r, "fid_diff_low"), _val(r, "fid_diff_high")
    if r is None or _missing(low) or _missing(high):
        return "not measured"
    if _contains_zero(low, high):
        return "undecided"
    return "agrees" if (high < 0) == want_negative else "disagrees"


def _combine(verdicts: list[str]) -> str:
    """Of the measured parts: any disagrees -> disagrees; all agree -> agrees; else within noise."""
    measured = [v for v in verdicts if v != "not measured"]
    if not measured:
        return "not measured"
    if "disagrees" in measured:
        return "disagrees"
    return "agrees" if all(v == "agrees" for v in measured) else "undecided"


def _interval(r) -> tuple[float, float]:
    """A row's paired interval of FID − FID(VAR); the plain VAR itself is [0, 0]."""
    if _missing(_val(r, "scorer")):
        return 0.0, 0.0
    return float(r["fid_diff_low"]), float(r["fid_diff_high"])


def _separated(a, b) -> bool:
    """True when two configurations' paired intervals (against the same baseline) do not overlap: a
    conservative reading that their FID differs beyond resampling noise."""
    (a_lo, a_hi), (b_lo, b_hi) = _interval(a), _interval(b)
    return a_hi < b_lo or b_hi < a_lo


def _fid_text(r, label: str) -> str:
    ci = "" if _missing(_val(r, "scorer")) else f", ΔFID {_ci(r['fid_diff'], r['fid_diff_low'], r['fid_diff_high'])}"
    return f"{label}: FID {_num(r['fid'])}{ci}"


def claim_main(res: Results) -> Claim:
    paper = "Table 1: VAR-d30 FID 1.95 → 1.78 (M=4), 1.66 (M=128)"
    claim = "LSRS improves FID over the plain VAR (main run, params M and ST)"
    if res.main is None:
        return Claim(claim, paper, "metrics/main.json missing", "not measured")
    d, m = res.main["fid_diff"], res.main
    r = {"scorer": m.get("scorer"), "fid_diff_low": d["low"], "fid_diff_high": d["high"]}
    ev = (f"M={m['M']}, ST={m['ST']}, {m['images']} images, {d.get('replicates') or 1} scorer replicates: FID "
          f"{_num(m['baseline']['fid'])} → {_num(m['lsrs']['fid'])}, ΔFID {_ci(d['delta'], d['low'], d['high'])} "
          f"(half-width {_pct(m.get('half_width_pct', 0) / 100)} of FID); share of bootstrap draws not better: "
          f"{_num(d.get('share_not_better'), 2)}")
    reps = d.get("replicate_deltas") or []
    if reps:
        ev += "; per replicate " + ", ".join(_signed(x, 2) for x in reps)
    verdict = _vs_zero(r)
    if verdict == "undecided" and d.get("var_images") is not None:
        fid0 = float(m["baseline"]["fid"])
        need = power(float(m["images"]), int(d.get("replicates") or 1), float(d["var_images"]),
                     float(d.get("tau2") or 0.0), MAIN_TARGET_PCT * fid0 / 100)
        ev += (f"; sd images {_num(math.sqrt(d['var_images']), 2)}, sd between replicates "
               f"{_num(math.sqrt(d.get('tau2') or 0.0), 2)}: a {MAIN_TARGET_PCT:.0f}% half-width needs N = "
               f"{_count(need['n_needed']) if need['n_needed'] else 'unreachable'} at this R, "
               f"R ≥ {need['r_needed']} for any N (power table)")
    return Claim(claim, paper, ev, verdict)


def claim_small_m(res: Results) -> Claim:
    claim = "LSRS improves FID already at small M (2 ≤ M ≤ 8, ST = 2)"
    paper = "Table 5: FID 1.95 → 1.87 / 1.78 / 1.73 at M = 2 / 4 / 8"
    rows = _rows(res, sweep_of(res, "m_curve"), var=res.main_var, scorer=res.main_scorer)
    rows = rows[(rows["M"] >= 2) & (rows["M"] <= 8)]
    if rows.empty:
        return Claim(claim, paper, f"no {sweep_of(res, 'm_curve')} rows with 2 ≤ M ≤ 8", "not measured")
    ev = "; ".join(_fid_text(r, f"M={int(r['M'])}") for _, r in rows.iterrows())
    return Claim(claim, paper, ev, _combine([_vs_zero(r) for _, r in rows.iterrows()]))


def _m_curve(res: Results) -> pd.DataFrame:
    """m_st2 with the plain VAR as M = 1 (the paper's Table 7), sorted by M."""
    base = _base(res, sweep_of(res, "m_curve"), res.main_var)
    rows = _rows(res, sweep_of(res, "m_curve"), var=res.main_var, scorer=res.main_scorer)
    if base is None:
        return rows
    base = base.copy()
    base["M"] = 1
    return pd.concat([base.to_frame().T, rows[rows["M"] != 1]]).sort_values("M")


def claim_m_shape(res: Results) -> Claim:
    claim = "FID falls as M grows up to about M = 128, then rises"
    paper = "Table 5 / Figure 3: lowest FID 1.66 at M = 128, 1.70-1.78 for M ≥ 256"
    curve = _m_curve(res)
    if len(curve) < 3:
        return Claim(claim, paper, f"{len(curve)} M value(s) in {sweep_of(res, 'm_curve')} (needs ≥ 3)", "not measured")
    fids = curve["fid"].astype(float).to_numpy()
    i = int(np.argmin(fids))
    best, first, last = curve.iloc[i], curve.iloc[0], curve.iloc[-1]
    ev = f"lowest FID at {_fid_text(best, 'M=' + str(int(best['M'])))}"
    if i < len(curve) - 1:
        ev += f"; at the largest {_fid_text(last, 'M=' + str(int(last['M'])))}"
    if 0 < i < len(curve) - 1:
        verdict = "agrees" if _separated(best, first) and _separated(best, last) else "undecided"
    else:
        other = curve.iloc[1] if i == 0 else curve.iloc[-2]
        verdict = "disagrees" if _separated(best, other) else "undecided"
        ev += "; the lowest FID is at the " + ("smallest" if i == 0 else "largest") + " M"
    return Claim(claim, paper, ev + ("" if verdict != "undecided" else "; the intervals overlap"), verdict)


def claim_st(res: Results) -> Claim:
    claim = "ST = 1 hurts FID and ST = 2 is the best start scale"
    paper = "Table 6: FID 2.30 at ST = 1 (VAR 1.95), lowest 1.68 at ST = 2"
    rows = _rows(res, sweep_of(res, "st_curve"), var=res.main_var, scorer=res.main_scorer)
    if rows.empty:
        return Claim(claim, paper, f"sweep family {sweep_of(res, 'st_curve')} missing", "not measured")
    st1, st2 = _at(rows, "ST", 1), _at(rows, "ST", 2)
    hurts = _vs_zero(st1, want_negative=False)
    order = rows.sort_values("fid")
    best = order.iloc[0]
    if st2 is None:
        best_v = "not measured"
    elif int(best["ST"]) == 2:
        best_v = "agrees" if len(order) == 1 or _separated(best, order.iloc[1]) else "undecided"
    else:
        best_v = "disagrees" if _separated(best, st2) else "undecided"
    parts = [f"ST={st}: not measured" if r is None else _fid_text(r, f"ST={st}") for st, r in ((1, st1), (2, st2))]
    ev = "; ".join(parts) + f"; lowest FID at ST={int(best['ST'])}"
    return Claim(claim, paper, ev, _combine([hurts, best_v]))


def claim_loss(res: Results) -> Claim:
    claim = "The pairwise loss gives slightly better FID than the pointwise loss"
    paper = "Table 2: pairwise 1.78/1.73/1.71/1.68 vs pointwise 1.79/1.76/1.73/1.73 (M = 4..32)"
    point = _rows(res, sweep_of(res, "loss"), var=res.main_var)
    pair = _rows(res, sweep_of(res, "m_curve"), var=res.main_var, scorer=res.main_scorer)
    pairs = [(int(r["M"]), r, _at(pair, "M", r["M"])) for _, r in point.iterrows()]
    pairs = [(m, p, q) for m, p, q in pairs if q is not None]
    if not pairs:
        return Claim(claim, paper, f"no common M in the {sweep_of(res, 'loss')} and {sweep_of(res, 'm_curve')} families", "not measured")
    wins = sum(q["fid"] < p["fid"] for _, p, q in pairs)
    ev = "; ".join(f"M={m}: pairwise {_num(q['fid'])} vs pointwise {_num(p['fid'])}" for m, p, q in pairs)
    ev += f"; pairwise lower at {wins} of {len(pairs)} M"
    if not any(_separated(p, q) for _, p, q in pairs):
        return Claim(claim, paper, ev + "; the intervals overlap at every M", "undecided")
    return Claim(claim, paper, ev, "agrees" if wins > len(pairs) / 2 else "disagrees")


def _mean_later(entry: dict) -> float:
    return float(np.mean([p["val_acc"] for p in entry["per_scale"] if p["scale"] > 1]))


def claim_scale1(res: Results) -> Claim:
    claim = f"Scorer accuracy is near 0.5 at scale 1 (within ±{NEAR_CHANCE}) and higher at later scales"
    paper = "Figure 5, appendix H: 52.2% at scale 1, 76-92% at scales 2-10"
    entries = _scorer_entries(res, main=True) + _scorer_entries(res, main=False)
    if not entries:
        return Claim(claim, paper, "metrics/scorer_analysis.json missing", "not measured")
    verdicts, parts = [], []
    for label, e in entries:
        acc1, later = e["per_scale"][0]["val_acc"], _mean_later(e)
        verdicts.append("agrees" if abs(acc1 - 0.5) <= NEAR_CHANCE and later > acc1 else "disagrees")
        parts.append(f"{label}: scale 1 {_num(acc1)}, mean of later scales {_num(later)}")
    return Claim(claim, paper, "; ".join(parts), _combine(verdicts))


def claim_first_scale(res: Results) -> Claim:
    claim = f"Training without the first scale changes per-scale accuracy by under {FIRST_SCALE_PP} points"
    paper = "Table 10: changes of −0.1 to +0.1 points at scales 2-10"
    with_first, without = _first_scale_pair(res)
    if with_first is None or without is None:
        return Claim(claim, paper, "scorer analysis lacks the pair of scorers", "not measured")
    acc = {p["scale"]: p["val_acc"] for p in without["per_scale"]}
    diffs = [100 * (acc[p["scale"]] - p["val_acc"]) for p in with_first["per_scale"] if p["scale"] > 1
             and p["scale"] in acc]
    if not diffs:
        return Claim(claim, paper, "no common scale > 1", "not measured")
    worst = max(diffs, key=abs)
    n = without.get("generated_maps")
    ev = (f"{with_first['scorer']} vs {without['scorer']}: largest change {_signed(worst, 2)} points, "
          f"mean absolute change {_num(np.mean(np.abs(diffs)), 2)} points over scales "
          f"2-{len(with_first['per_scale'])}")
    if n:
        ev += f" ({n} generated held-out maps)"
    return Claim(claim, paper, ev, "agrees" if abs(worst) < FIRST_SCALE_PP else "disagrees")


def compare_rows(a, b, fid0: float) -> str:
    """a vs b (two LSRS rows on the same paired images): 'better' / 'worse' when the interval of
    ΔFID_a − ΔFID_b excludes 0, 'equivalent' when it lies within ±EQUIVALENCE_PCT % of the plain FID,
    else 'undecided'. The interval is ± 1.96 sqrt(se_a² + se_b²), conservative for positively
    correlated rows (shared images)."""
    se_a, se_b = _val(a, "fid_diff_se"), _val(b, "fid_diff_se")
    if se_a is None or se_b is None:
        return "undecided"
    diff, half = float(a["fid_diff"]) - float(b["fid_diff"]), Z95 * math.hypot(float(se_a), float(se_b))
    margin = EQUIVALENCE_PCT * fid0 / 100
    if diff + half < 0:
        return "better"
    if diff - half > 0:
        return "worse"
    return "equivalent" if -margin <= diff - half and diff + half <= margin else "undecided"


def claim_topk(res: Results) -> Claim:
    claim = f"Top-k selection is no better than greedy selection (k = 1); equivalence margin ±{EQUIVALENCE_PCT:.0f}% of FID"
    paper = "Tables 8, 9: k = 2..16 within 1.63-1.71 vs greedy 1.66 (M=128) and 1.70 (M=256)"
    topk = _rows(res, sweep_of(res, "topk"), var=res.main_var, k=None)
    greedy = _rows(res, sweep_of(res, "m_curve"), var=res.main_var, scorer=res.main_scorer)
    base = _base(res, sweep_of(res, "m_curve"), res.main_var)
    parts, outcomes = [], []
    for _, r in topk.sort_values(["M", "k"]).iterrows():
        g = _at(greedy, "M", r["M"])
        if g is None or base is None:
            continue
        outcome = compare_rows(r, g, float(base["fid"]))
        parts.append(f"M={int(r['M'])} k={int(r['k'])}: {_num(r['fid'])} vs greedy {_num(g['fid'])} ({outcome})")
        outcomes.append(outcome)
    if not parts:
        return Claim(claim, paper, "no topk row with a greedy row at the same M", "not measured")
    ev = "; ".join(parts)
    if "better" in outcomes:
        return Claim(claim, paper, ev, "disagrees")
    return Claim(claim, paper, ev, "agrees" if all(o in ("equivalent", "worse") for o in outcomes) else "undecided")


def claim_depth(res: Results) -> Claim:
    claim = "Larger VARs make the scorer less accurate (real and generated maps are closer)"
    paper = "Figure 5: accuracy lower for deeper VARs; mean score gap 2.22 (d30) < 2.96 (d24)"
    by_name, depth = _analysis(res), res.spec.var.depths
    entries = [(var, by_name[n]) for var, n in _depth_scorers(res).items() if n in by_name]
    if len(entries) < 2:
        return Claim(claim, paper, f"{len(entries)} depth(s) with a scorer analysis (needs ≥ 2)", "not measured")
    accs = [_mean_later(e) for _, e in entries]
    gaps = [float(np.mean([p["gap"] for p in e["per_scale"] if p["scale"] > 1])) for _, e in entries]
    ev = "; ".join(f"{_var_label(v)} (depth {depth[v] if v in depth else '?'}): mean accuracy scales ≥ 2 "
                   f"{_num(a)}, mean score gap {_num(g, 2)}" for (v, _), a, g in zip(entries, accs, gaps))
    decreasing = all(b < a for a, b in zip(accs, accs[1:]))
    return Claim(claim, paper, ev, "agrees" if decreasing else "disagrees")


def claim_fid_terms(res: Results) -> Claim:
    claim = "mean_diff² and trace_term both fall from M = 1 up to the best M"
    paper = "Table 7: mean_diff² 0.229 → 0.201 and trace_term 1.725 → 1.462 from M = 1 to M = 128"
    curve = _m_curve(res)
    if len(curve) < 2 or "fid_mean_diff2" not in curve:
        return Claim(claim, paper, f"{sweep_of(res, 'm_curve')} missing", "not measured")
    best, first = curve.iloc[int(np.argmin(curve["fid"].astype(float)))], curve.iloc[0]
    ev = (f"M=1 → best M={int(best['M'])}: mean_diff² {_num(first['fid_mean_diff2'])} → "
          f"{_num(best['fid_mean_diff2'])}, trace_term {_num(first['fid_trace_term'])} → "
          f"{_num(best['fid_trace_term'])}")
    if int(best["M"]) == 1:
        return Claim(claim, paper, ev + " (the plain VAR has the lowest FID)", "disagrees")
    falls = best["fid_mean_diff2"] < first["fid_mean_diff2"] and best["fid_trace_term"] < first["fid_trace_term"]
    return Claim(claim, paper, ev, "agrees" if falls else "disagrees")


def claim_flexvar(res: Results) -> Claim:
    claim = "LSRS (scorer on r_k) improves FlexVAR's FID at M = 2 and M = 4"
    paper = "Table 1: FlexVAR-d24 FID 2.23 → 2.13 (M=2), 2.09 (M=4)"
    family = _flex_family(res, "M")
    rows = _rows(res, family, var=FLEX, scorer=FLEX) if family else pd.DataFrame()
    picked = [r for r in (_at(rows, "M", m) for m in FLEX_TABLE1_M) if r is not None] if not rows.empty else []
    if not picked:
        return Claim(claim, paper, "no FlexVAR LSRS rows at M = 2 or 4 (flexvar disabled or not run)", "not measured")
    base = _base(res, family, FLEX)
    ev = "; ".join([f"plain FlexVAR FID {_num(_val(base, 'fid'))}"] + [_fid_text(r, f"M={int(r['M'])}") for r in picked])
    return Claim(claim, paper, ev, _combine([_vs_zero(r) for r in picked]))


CLAIMS = (claim_main, claim_small_m, claim_m_shape, claim_st, claim_loss, claim_scale1, claim_first_scale,
          claim_topk, claim_depth, claim_fid_terms, claim_flexvar)


def scorecard(res: Results) -> list[Claim]:
    return [c(res) for c in CLAIMS]
