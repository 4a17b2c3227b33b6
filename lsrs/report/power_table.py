"""Power: how wide each ΔFID interval is against its limit, and which N and R would meet it.

The variance model Var(ΔFID) = a/N + τ²/R (image sampling, between scorer replicates) is solved for
the number of images and of replicates a half-width needs; `power` is also what
benchmarks/pilot_power.py sizes a run with, and what the main-run claim quotes when it is undecided.
"""
from __future__ import annotations

import math

import pandas as pd

from lsrs.report.formatting import DASH, Table, _count, _missing, _num, _signed
from lsrs.report.measured import _table
from lsrs.report.results import Results, _base, _main_series, _val, sweep_of

MAIN_TARGET_PCT = 2.0  # half-width limits of the ΔFID interval, % of the plain FID (main run)
SWEEP_TARGET_PCT = 4.0  # ... of every m_st2 row with M <= 128 and every st_m32 row
Z95 = 1.959964


def _target_pct(res: Results, family: str | None, r) -> float | None:
    """The half-width limit a row must meet (% of the plain FID), None where the budget decides."""
    if family is None:
        return MAIN_TARGET_PCT
    if family == sweep_of(res, "m_curve") and int(r["M"]) <= 128:
        return SWEEP_TARGET_PCT
    if family == sweep_of(res, "st_curve"):
        return SWEEP_TARGET_PCT
    return None


def power(n: float, r: int, var_images: float, tau2: float, half_target: float) -> dict:
    """What N and R a half-width `half_target` needs, from the variance model
    Var(ΔFID) = a / N + τ² / R (a = var_images * N: image sampling; τ²: between scorer replicates)."""
    a = var_images * n
    room = (half_target / Z95) ** 2 - tau2 / r
    room5 = (half_target / Z95) ** 2 - tau2 / max(r, 5)
    return {"n_needed": math.ceil(a / room) if room > 0 else None,
            "n_needed_r5": math.ceil(a / room5) if room5 > 0 else None,
            "r_needed": math.ceil(tau2 / (half_target / Z95) ** 2) if tau2 > 0 else 1}


def _power_rows(res: Results) -> list[tuple[str, pd.Series, float]]:
    """(family or None for the main run, LSRS row, plain FID) of every measured LSRS row."""
    out = []
    if res.main is not None:
        out.append((None, _main_series(res.main, "lsrs"), float(res.main["baseline"]["fid"])))
    first = [f for f in (sweep_of(res, "m_curve"), sweep_of(res, "st_curve")) if f in res.sweeps]  # limited rows first
    for family in first + sorted(set(res.sweeps) - set(first)):
        df = res.sweeps[family]
        for _, r in df[~df["baseline"]].sort_values(["scorer", "M", "ST", "k"]).iterrows():
            base = _base(res, family, r["var"])
            if base is not None:
                out.append((family, r, float(base["fid"])))
    return out


def table_power(res: Results) -> Table:
    """Per LSRS row: images, replicates, half-width of the ΔFID interval (absolute and % of the plain
    FID), the limit it must meet, both variance components, and the N and R that would meet it."""
    rows = []
    for family, r, fid0 in _power_rows(res):
        n, reps = _val(r, "count"), int(_val(r, "replicates") or 1)
        half = (float(r["fid_diff_high"]) - float(r["fid_diff_low"])) / 2
        target = _target_pct(res, family, r)
        var_images, tau2 = _val(r, "var_images"), float(_val(r, "tau2") or 0.0)
        need = power(float(n), reps, float(var_images), tau2, (target or SWEEP_TARGET_PCT) * fid0 / 100) \
            if n and var_images is not None else {}
        label = "main" if family is None else family
        run = f"{r.get('scorer')} M={int(r['M'])} " + (f"only scale {int(r['only_scale'])}"
                                                        if not _missing(_val(r, "only_scale")) else f"ST={int(r['ST'])}")
        if not _missing(_val(r, "k")) and int(r["k"]) > 1:
            run += f" k={int(r['k'])}"
        data = {"family": label, "run": run, "N": n, "R": reps, "ΔFID": r["fid_diff"], "half-width": half,
                "half-width %": 100 * half / fid0, "limit %": target,
                "meets": None if target is None else bool(100 * half / fid0 <= target),
                "sd images (at N)": math.sqrt(var_images) if var_images is not None else None,
                "sd between replicates": math.sqrt(tau2), **need}
        disp = {"family": label, "run": run, "N": _count(n), "R": str(reps), "ΔFID": _signed(r["fid_diff"], 2),
                "half-width": _num(half, 2), "% of FID": f"{100 * half / fid0:.1f}%",
                "limit": DASH if target is None else f"{target:.0f}%",
                "meets": DASH if target is None else ("yes" if data["meets"] else "**no**"),
                "sd images": _num(data["sd images (at N)"], 2), "sd replicates": _num(data["sd between replicates"], 2),
                "N for limit (this R)": _need(need, "n_needed"), "N for limit (R=5)": _need(need, "n_needed_r5"),
                "R for limit (N→∞)": _count(need.get("r_needed"))}
        rows.append((data, disp))
    columns = ["family", "run", "N", "R", "ΔFID", "half-width", "% of FID", "limit", "meets", "sd images",
               "sd replicates", "N for limit (this R)", "N for limit (R=5)", "R for limit (N→∞)"]
    notes = [f"Half-width = half the 95% interval of ΔFID. Limits: {MAIN_TARGET_PCT:.0f}% of the plain FID for the "
             f"main run, {SWEEP_TARGET_PCT:.0f}% for every {sweep_of(res, 'm_curve')} row with M ≤ 128 and every "
             f"{sweep_of(res, 'st_curve')} row; other rows "
             f"are sized by the budget (their 'N for limit' columns use the {SWEEP_TARGET_PCT:.0f}% limit).",
             "Variance model: Var(ΔFID) = a/N + τ²/R. sd images = sqrt(a/N), the spread of the pooled ΔFID over "
             "image resamples with the replicates fixed; sd replicates = τ, the DerSimonian-Laird between-replicate "
             "spread of one replicate's ΔFID (its replicates' images are disjoint, so independent). 'unreachable': "
             "τ²/R alone exceeds the limit at that R, whatever N."]
    return _table("power", "Power: ΔFID half-widths, variance components and the N and R each limit needs", rows,
                  columns, notes)


def _need(need: dict, key: str) -> str:
    """An N from `power`: the number, 'unreachable' (tau2 / R alone is over the limit), or — (no components)."""
    if not need:
        return DASH
    return _count(need[key]) if need.get(key) else "unreachable"
