"""The refcheck table: one line per reference quantity, grouped by file, consecutive list elements
with the same verdict collapsed into one line, and a summary line (see lsrs.verify.refcompare)."""
from __future__ import annotations

import re
from dataclasses import replace

from lsrs.verify.refcompare import VERDICTS, Row, Stats, describe, has_problems, verdict_counts

_INDEXED = re.compile(r"^(.*)\[(\d+)\]$")
_SEVERITY = {"FAIL": 3, "MISSING": 2, "PASS": 1, "INFO": 0}


def collapse_rows(rows: list[Row]) -> list[Row]:
    """Merge consecutive elements of one list (idx_Bl[0..9]) that share verdict, tolerance and note into a
    single row whose statistic covers them all (counts summed, worst error and its element reported).
    Elements with another verdict (e.g. the unchecked scales of a more_smooth run) stay separate."""
    groups: list[tuple[tuple | None, list[tuple[Row, int]]]] = []
    for row in rows:
        m = _INDEXED.match(row.path)
        key = (row.file, m.group(1), row.verdict, row.tolerance, row.note) if m and row.stats else None
        if key is not None and groups and groups[-1][0] == key:
            groups[-1][1].append((row, int(m.group(2))))
        else:
            groups.append((key, [(row, int(m.group(2)) if m else -1)]))
    return [_merge_group(members) for _, members in groups]


def _merge_group(members: list[tuple[Row, int]]) -> Row:
    first, first_index = members[0]
    if len(members) == 1:
        return first
    all_stats = [row.stats for row, _ in members]
    merged = Stats(numel=sum(s.numel for s in all_stats), n_excused=sum(s.n_excused for s in all_stats))
    if all(s.n_equal is not None for s in all_stats):
        merged.n_equal = sum(s.n_equal for s in all_stats)
        badness = [s.numel - s.n_equal for s in all_stats]
    else:
        merged.max_abs = max(s.max_abs or 0.0 for s in all_stats)
        merged.max_rel = max(s.max_rel or 0.0 for s in all_stats)
        merged.tol_used = max(s.tol_used or 0.0 for s in all_stats)
        badness = [(s.tol_used or 0.0, s.max_abs or 0.0) for s in all_stats]
    worst = max(range(len(members)), key=lambda i: badness[i])
    if badness[worst] not in (0, (0.0, 0.0)):
        merged.worst = f"[{members[worst][1]}]"
    dtype, shapes = first.kind.split(" ", 1)[0], [row.kind.split(" ", 1)[-1] for row, _ in members]
    kind = f"{dtype} {len(shapes)}×{shapes[0]}" if len(set(shapes)) == 1 else f"{dtype} {shapes[0]}…{shapes[-1]}"
    base = first.path.rsplit("[", 1)[0]
    return replace(first, path=f"{base}[{first_index}..{members[-1][1]}]", kind=kind, stats=merged,
                   statistic=describe(merged))


def summary_line(rows: list[Row]) -> str:
    counts = verdict_counts(rows)
    status = "OK" if not has_problems(rows) else "PROBLEMS"
    return (f"refcheck {status}: {len(rows)} reference quantities — "
            + ", ".join(f"{v} {counts[v]}" for v in VERDICTS))


def render_table(rows: list[Row]) -> str:
    """A per-file table, one line per quantity (lists collapsed), then the summary line (counts over
    uncollapsed rows)."""
    shown = collapse_rows(rows)
    header = ("verdict", "quantity", "kind", "statistic", "tolerance", "note")
    cells = [(r.verdict, r.path or "(file)", r.kind, r.statistic, r.tolerance, r.note) for r in shown]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header[:-1])]

    def line(c) -> str:
        return "  " + "  ".join(x.ljust(w) for x, w in zip(c[:-1], widths)) + ("  " + c[-1] if c[-1] else "")

    lines, current = [], None
    for row, c in zip(shown, cells):
        if row.file != current:
            current = row.file
            counts = verdict_counts(r for r in rows if r.file == current)
            lines += ["", f"== {current}  (" + ", ".join(f"{v} {n}" for v, n in counts.items() if n) + ")",
                      line(header).rstrip()]
        lines.append(line(c).rstrip())
    lines += ["", summary_line(rows)]
    return "\n".join(lines).lstrip("\n")
