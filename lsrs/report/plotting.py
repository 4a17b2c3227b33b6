"""What every figure shares: the seaborn style (scoped, no global rcParams left changed), one colour
per configuration, the "not measured" panel and the log2 M axis.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable

from lsrs.report.results import Results

VAR_COLOR, REAL_COLOR, GENERATED_COLOR = "0.35", "#d62728", "#1f77b4"  # paper: red real, blue generated


@contextmanager
def _style():
    """Seaborn's look for the figures drawn inside, without leaving global rcParams changed."""
    import matplotlib as mpl
    import seaborn as sns

    with mpl.rc_context():
        sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
        yield


def _colors(res: Results) -> dict[str, str]:
    """One colour per configuration, the same in every figure: plain VAR grey, each scorer run its own."""
    import seaborn as sns

    names = list(res.spec.scorer.runs) or sorted({e["scorer"] for e in res.analysis})
    palette = sns.color_palette("colorblind", max(len(names), 1)).as_hex()
    return {"VAR": VAR_COLOR, **{n: palette[i % len(palette)] for i, n in enumerate(names)}}


def _not_measured(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"not measured\n({what})", ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_axis_off()


def _log2_axis(ax, xs: Iterable) -> None:
    from matplotlib.ticker import NullLocator

    xs = sorted({int(x) for x in xs})
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.xaxis.set_minor_locator(NullLocator())
