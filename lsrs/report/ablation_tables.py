"""Tables 2, 3, 5-10, 10b and 11: the ablations, each read from one sweep family (or two side by side).

Every LSRS row sits under the plain-VAR row of its family, measured on the same paired images, so
its ΔFID interval is the paired one; a family that is missing leaves its table with a title that
still says what it would show and a "not measured" note.
"""
from __future__ import annotations

import pandas as pd

from lsrs.report.formatting import CI, DASH, REPS, SOURCE, Table, _contains_zero, _count, _num, _pct, _signed
from lsrs.report.measured import _common_notes, _measured_row, _table
from lsrs.report.results import (Results, _at, _attribution_families, _base, _first_scale_pair, _rows, _val,
                                 _values, _var_label, sweep_of)

FID_IS_SFID = (("FID↓", "fid", 3), ("IS↑", "is", 3), ("sFID↓", "sfid", 3))


def _sweep_table(res: Results, key: str, title: str, family: str, label: str, lsrs: pd.DataFrame,
                 cols=FID_IS_SFID, baseline_label: str = DASH) -> Table:
    """A table of one family: the plain-VAR row labelled `baseline_label`, then one row per LSRS run."""
    base = _base(res, family, res.main_var)
    notes = []
    rows = [] if base is None else [_measured_row(res, {label: baseline_label}, base, cols)]
    for _, r in lsrs.iterrows():
        rows.append(_measured_row(res, {label: int(r[label])}, r, cols))
    if base is None or lsrs.empty:
        notes.append(f"Not measured: sweep family {family} has no {'baseline' if base is None else 'LSRS'} rows.")
    columns = [label, *(h for h, _, _ in cols), CI, REPS, SOURCE]
    return _table(key, title, rows, columns, notes + _common_notes(res))


def table05(res: Results) -> Table:
    lsrs = _rows(res, sweep_of(res, "m_curve"), var=res.main_var, scorer=res.main_scorer)
    title = (f"Table 5: Metrics across M values with ST = {_values(lsrs, 'ST', res, sweep_of(res, 'm_curve'))} "
             f"({_var_label(res.main_var)})")
    return _sweep_table(res, "table05", title, sweep_of(res, "m_curve"), "M", lsrs)


def table06(res: Results) -> Table:
    lsrs = _rows(res, sweep_of(res, "st_curve"), var=res.main_var, scorer=res.main_scorer)
    title = (f"Table 6: Metrics across ST values with M = {_values(lsrs, 'M', res, sweep_of(res, 'st_curve'))} "
             f"({_var_label(res.main_var)})")
    return _sweep_table(res, "table06", title, sweep_of(res, "st_curve"), "ST", lsrs)


TABLE7_COLS = (("FID", "fid", 3), ("mean_diff²", "fid_mean_diff2", 3), ("trace_term", "fid_trace_term", 3),
               ("Tr(Σg)", "fid_tr_sigma_gen", 3), ("2Tr((ΣrΣg)^1/2)", "fid_tr_sqrt_x2", 3))


def table07(res: Results) -> Table:
    """FID = mean_diff² + trace_term across M; the plain VAR is the paper's M = 1 row."""
    lsrs = _rows(res, sweep_of(res, "m_curve"), var=res.main_var, scorer=res.main_scorer)
    t = _sweep_table(res, "table07", "Table 7: Variation of FID and its components with M (ST = "
                     f"{_values(lsrs, 'ST', res, sweep_of(res, 'm_curve'))})", sweep_of(res, "m_curve"), "M", lsrs, cols=TABLE7_COLS, baseline_label="1")
    df = res.sweeps.get(sweep_of(res, "m_curve"))
    if df is not None and "fid_tr_sigma_ref" in df:
        refs = sorted({round(float(v), 6) for v in df["fid_tr_sigma_ref"].dropna()})
        t.notes.insert(0, f"For all M, Tr(Σr) = {_num(refs[0])}." if len(refs) == 1 else
                       f"Tr(Σr) varies: {', '.join(_num(v) for v in refs)}.")
    return t


def table03(res: Results) -> Table:
    """The paper's transposed layout: one column per M, FID with its change from the baseline."""
    base = _base(res, sweep_of(res, "m_at_st1"), res.main_var)
    lsrs = _rows(res, sweep_of(res, "m_at_st1"), var=res.main_var, scorer=res.main_scorer)
    records = ([] if base is None else [("—", base)]) + [(str(int(r["M"])), r) for _, r in lsrs.iterrows()]
    data = pd.DataFrame([_measured_row(res, {"M": m}, r, (("FID", "fid", 3),))[0] for m, r in records])
    display = pd.DataFrame({"M": ["FID", "ΔFID 95% CI", SOURCE]})
    for m, r in records:
        is_base = m == "—"
        fid = _num(_val(r, "fid")) + ("" if is_base else f" ({_signed(_val(r, 'fid_diff'))})")
        low, high = _val(r, "fid_diff_low"), _val(r, "fid_diff_high")
        ci = DASH if is_base else f"[{_signed(low)}, {_signed(high)}]" + (" (within noise)" * _contains_zero(low, high))
        display[m] = [fid, ci, f"{res.profile}, {_count(_val(r, 'count'))} images"]
    notes = []
    if base is None or lsrs.empty:
        notes.append(f"Not measured: sweep family {sweep_of(res, 'm_at_st1')} missing or without baseline or LSRS rows.")
        display = pd.DataFrame(columns=["M", DASH])
    if data.empty:
        data = pd.DataFrame(columns=["M", "FID", "ΔFID", "ΔFID low", "ΔFID high", "profile", "images"])
    return Table("table03", f"Table 3: FID across M values under ST = {_values(lsrs, 'ST', res, sweep_of(res, 'm_at_st1'))}, "
                 "the first scale with only one token", display, data,
                 notes + ["The CSV has one row per M (numbers); this layout is the paper's."] + _common_notes(res))


def table02(res: Results) -> Table:
    """Pointwise (loss family) vs pairwise (m_st2) scorer at the loss family's M values."""
    point = _rows(res, sweep_of(res, "loss"), var=res.main_var)
    pair = _rows(res, sweep_of(res, "m_curve"), var=res.main_var, scorer=res.main_scorer)
    point_name = str(point["scorer"].iloc[0]) if not point.empty else None
    groups = (("Pointwise", point, sweep_of(res, "loss"), point_name),
              ("Pairwise", pair, sweep_of(res, "m_curve"), res.main_scorer))
    columns = ["Inference Model", *(f"{g} {h}" for g, *_ in groups for h, _, _ in FID_IS_SFID),
               *(f"{g} {CI}" for g, *_ in groups), SOURCE]
    rows = []
    for m in [None, *sorted({int(v) for v in point["M"]})]:
        data, disp = {"Inference Model": _var_label(res.main_var) if m is None else f"+ LSRS M={m}"}, {}
        disp.update(data)
        for g, lsrs, family, scorer in groups:
            r = _base(res, family, res.main_var) if m is None else _at(lsrs[lsrs["scorer"] == scorer], "M", m)
            _add_group(data, disp, g, *_measured_row(res, {}, r, [(f"{g} {h}", k, dg) for h, k, dg in FID_IS_SFID]))
        rows.append((data, disp))
    notes = [f"Pointwise: scorer {point_name} (sweep family {sweep_of(res, 'loss')}); pairwise: scorer {res.main_scorer} "
             f"(family {sweep_of(res, 'm_curve')}); both at ST = 2 on the same paired images."]
    if point.empty:
        notes.append(f"Not measured: sweep family {sweep_of(res, 'loss')} missing or empty.")
        rows = rows[:0]
    return _table("table02", "Table 2: FID, IS and sFID for different M under the pointwise and the "
                  "pairwise loss", rows, columns, notes + _common_notes(res))


def _topk_table(res: Results, key: str, number: int, index: int) -> Table:
    """Tables 8/9: top-k selection (family topk) at its index-th M value; k = 1 (greedy) from m_st2."""
    topk = _rows(res, sweep_of(res, "topk"), var=res.main_var, k=None)
    ms = sorted({int(v) for v in topk["M"]})
    columns = ["k", "FID", "IS", CI, SOURCE]
    if index >= len(ms):
        return _table(key, f"Table {number}: Performance of top-k sampling in LSRS (not measured)", [], columns,
                      [f"Not measured: the topk sweep has {len(ms)} M value(s); this table shows the "
                       f"{'first' if index == 0 else 'second'} one."])
    m = ms[index]
    at_m = topk[topk["M"] == m]
    greedy = _at(_rows(res, sweep_of(res, "m_curve"), var=res.main_var, scorer=res.main_scorer), "M", m)
    cols = (("FID", "fid", 3), ("IS", "is", 3))
    rows = [] if greedy is None else [_measured_row(res, {"k": 1}, greedy, cols)]
    rows += [_measured_row(res, {"k": int(r["k"])}, r, cols) for _, r in at_m.sort_values("k").iterrows()]
    notes = [f"k = 1 is greedy selection (family {sweep_of(res, 'm_curve')}); k > 1 samples from the k best by a softmax of the "
             "scores (family topk)."]
    if greedy is None:
        notes.append(f"k = 1 not measured: family {sweep_of(res, 'm_curve')} has no M = {m} row.")
    st = _values(at_m, "ST")
    return _table(key, f"Table {number}: Performance of top-k sampling in LSRS with M = {m} "
                  f"({_var_label(res.main_var)}, ST = {st})", rows, columns, notes + _common_notes(res))


def table08(res: Results) -> Table:
    return _topk_table(res, "table08", 8, 0)


def table09(res: Results) -> Table:
    return _topk_table(res, "table09", 9, 1)


def table10(res: Results) -> Table:
    """Per-scale validation accuracy with and without scale 1 in the scorer's training."""
    with_first, without = _first_scale_pair(res)
    columns = ["scale", "w first scale", "w/o first scale", "change"]
    if with_first is None or without is None:
        return _table("table10", "Table 10: Performance comparison w and w/o the first scale (not measured)", [],
                      columns, ["Not measured: scorer_analysis.json lacks the main scorer or a scorer trained "
                                "without the first scale."])
    acc_without = {p["scale"]: p["val_acc"] for p in without["per_scale"]}
    rows = []
    for p in with_first["per_scale"]:
        s = p["scale"]
        w = p["val_acc"]
        wo = None if s == 1 else acc_without.get(s)  # scale 1 was left out of that scorer's training
        change = None if wo is None else 100 * (wo - w)
        rows.append(({"scale": s, "w first scale": w, "w/o first scale": wo, "change (points)": change},
                     {"scale": str(s), "w first scale": _pct(w), "w/o first scale": _pct(wo),
                      "change": DASH if change is None else f"{_signed(change, 1)}%"}))
    notes = [f"Validation accuracy of ranking a real above a generated map, per scale: {with_first['scorer']} "
             f"vs {without['scorer']} (both on {_var_label(with_first.get('var'))}); held-out maps: "
             f"{with_first.get('real_maps')} real, {with_first.get('generated_maps')} generated; profile "
             f"{res.profile}. Change in percentage points."]
    return _table("table10", "Table 10: Performance comparison w and w/o the first scale", rows, columns, notes)


def table10b(res: Results) -> Table:
    """Table 10's companion: does leaving scale 1 out of the scorer change LSRS's FID?"""
    without = _rows(res, sweep_of(res, "first_scale"), var=res.main_var)
    with_first = _rows(res, sweep_of(res, "m_curve"), var=res.main_var, scorer=res.main_scorer)
    cols = [("FID↓ w first scale", "w"), ("FID↓ w/o first scale", "wo")]
    columns = ["M", *(h for h, _ in cols), f"w {CI}", f"w/o {CI}", SOURCE]
    rows = []
    for m in sorted({int(v) for v in without["M"]}):
        data, disp = {"M": m}, {"M": str(m)}
        for (header, tag), r in zip(cols, (_at(with_first, "M", m), _at(without, "M", m))):
            _add_group(data, disp, "w" if tag == "w" else "w/o", *_measured_row(res, {}, r, [(header, "fid", 3)]))
        rows.append((data, disp))
    notes = [f"Scorer trained with scale 1 (family {sweep_of(res, 'm_curve')}) vs without it (family "
             f"{sweep_of(res, 'first_scale')}), same paired images."]
    if without.empty:
        notes.append(f"Not measured: sweep family {sweep_of(res, 'first_scale')} missing or empty.")
    return _table("table10b", "Table 10 (companion): FID with the scorer trained w and w/o the first scale",
                  rows, columns, notes + _common_notes(res))


def table11(res: Results) -> Table:
    """Per-scale attribution: ΔFID when only scale k draws M candidates (m_k = M, 1 elsewhere)."""
    rows, notes = [], []
    for family, label, var in _attribution_families(res):
        lsrs = _rows(res, family, var=var).sort_values("only_scale") if family in res.sweeps else pd.DataFrame()
        if lsrs.empty:
            notes.append(f"{label}: not measured (sweep {family} missing).")
        for _, r in lsrs.iterrows():
            rows.append(_measured_row(res, {"model": label, "scale k": int(r["only_scale"]), "M": int(r["M"])}, r,
                                      [("FID↓", "fid", 3)]))
    if not _attribution_families(res):
        notes.append("Not measured: no sweep has role attribution.")
    return _table("table11", "Table 11: Where the gain comes from: ΔFID with M candidates at one scale only",
                  rows, ["model", "scale k", "M", "FID↓", CI, REPS, SOURCE], notes + _common_notes(res))


def _add_group(data: dict, disp: dict, group: str, d: dict, s: dict) -> None:
    """One column group's cells of a measured row, its ΔFID columns (and their display) prefixed."""
    data.update({(f"{group} {k}" if k.startswith("ΔFID") else k): v for k, v in d.items()})
    disp.update({(f"{group} {k}" if k == CI else k): v for k, v in s.items()})
