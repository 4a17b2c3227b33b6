"""One measured configuration as a table row, the same way in every table.

Each row carries its metric columns, the paired ΔFID interval (none for a baseline), the
per-replicate ΔFIDs and where it was measured (profile, number of images), so no table can show a
number without its interval and provenance; `_common_notes` says once how those intervals are made.
"""
from __future__ import annotations

import pandas as pd

from lsrs.report.formatting import CI, DASH, REPS, SOURCE, Table, _ci, _count, _missing, _num, _signed
from lsrs.report.results import Results, _val


def _measured_row(res: Results, lead: dict, r, cols, extra: dict | None = None) -> tuple[dict, dict]:
    """(CSV row, display row) of one measured configuration: the lead cells, the metric columns,
    `extra` cells (header -> (value, text)), the paired ΔFID interval (none for a baseline) and
    where it was measured (profile, number of images)."""
    data, disp = dict(lead), {k: str(v) for k, v in lead.items()}
    for header, key, digits in cols:
        data[header] = _val(r, key)
        disp[header] = _num(data[header], digits)
    for header, (value, text) in (extra or {}).items():
        data[header], disp[header] = value, text
    baseline = _missing(_val(r, "scorer"))
    for header, key in (("ΔFID", "fid_diff"), ("ΔFID low", "fid_diff_low"), ("ΔFID high", "fid_diff_high")):
        data[header] = None if baseline else _val(r, key)
    disp[CI] = DASH if baseline else _ci(data["ΔFID"], data["ΔFID low"], data["ΔFID high"])
    reps = [] if baseline else _replicate_deltas(r)
    data[REPS] = " ".join(f"{d:.3f}" for d in reps) or None
    disp[REPS] = ", ".join(_signed(d, 2) for d in reps) or DASH
    n = _val(r, "count")
    data.update(profile=res.profile, images=n)
    data[SOURCE] = disp[SOURCE] = f"this run ({res.profile}, {_count(n)} images)"
    return data, disp


def _replicate_deltas(r) -> list[float]:
    """The per-replicate ΔFIDs of a row (each on its own 1/R of the images), [] without replicates."""
    v = _val(r, "replicate_deltas")
    if isinstance(v, (list, tuple)):
        return [float(x) for x in v]
    return [float(x) for x in str(v).split()] if v else []


def _table(key: str, title: str, rows: list[tuple[dict, dict]], columns: list[str], notes: list[str]) -> Table:
    data = pd.DataFrame([d for d, _ in rows])
    display = pd.DataFrame([s for _, s in rows], columns=columns)
    if not rows:
        data = pd.DataFrame(columns=columns)
    return Table(key, title, display, data, notes)


def _common_notes(res: Results) -> list[str]:
    r = res.spec.scorer.replicates
    return [f"Profile {res.profile}; every measured row gives its number of evaluation images. "
            "ΔFID = FID − FID(plain VAR of the same depth on the same paired images), with its 95% interval: "
            f"a percentile bootstrap (at least {res.spec.evaluation.n_boot} draws, more until both endpoints' "
            f"Monte-Carlo error is below {res.spec.evaluation.mcse_target}) that resamples the images within "
            f"each of the {r} scorer replicates (image i uses replicate (i // C) mod {r}) and adds the "
            "between-replicate term N(0, τ²/R), so it covers scorer training and image sampling; "
            "\"within noise\": the interval contains 0. "
            f"{REPS}: each replicate's ΔFID on its own 1/{r} of the images (noisier than the pooled ΔFID)."]
