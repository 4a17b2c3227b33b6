"""The params a report reads, as a plain dict (the input of `lsrs.report.ReportSpec.from_dict`).

The report layer reads plain data and never imports the pipeline or torch (an import-linter
contract in pyproject.toml), so it cannot take `Params`; this is the one place that knows which
params it reads and where they live. Returning a JSON-able dict, not the report's dataclasses,
keeps the pipeline from importing the report (they are sibling layers).
"""
from __future__ import annotations

from lsrs.pipeline.params import Params
from lsrs.pipeline.sweep_config import SweepConfig


def report_spec(params: Params) -> dict:
    """params -> {profile, dataset, num_scales, var, scorer, evaluation, ablations, flexvar} (lsrs.report.spec)."""
    ab, fx, grids = params.ablations, params.flexvar, params.ablations.grids
    return {
        "profile": params.profile,
        "dataset": params.data.dataset,
        "num_scales": params.num_scales,
        "var": {"main": params.var.main, "depths": {name: s.depth for name, s in params.var.depths.items()}},
        "scorer": {"main": params.lsrs.scorer, "replicates": params.scorer.replicates,
                   "runs": {name: {"var": r.var, "loss": r.loss, "without_first_scale": r.without_first_scale}
                            for name, r in params.scorer.runs.items()}},
        "evaluation": {"n_boot": params.evaluation.n_boot, "mcse_target": params.evaluation.mcse_target},
        "ablations": {"per_class": ab.per_class, "sweeps": _sweeps(ab.sweeps),
                      "grids": {"images": grids.images, "M": list(grids.M), "ST": list(grids.ST),
                                "M_fixed": grids.M_fixed, "ST_fixed": grids.ST_fixed}},
        "flexvar": {"enabled": fx.enabled, "depth": fx.var.model.depth, "num_scales": len(fx.patch_nums),
                    "sweeps": _sweeps(fx.sweeps)},
    }


def _sweeps(sweeps: dict[str, SweepConfig]) -> dict[str, dict]:
    return {name: {"M": list(sw.M), "ST": list(sw.ST), "k": list(sw.k), "only_scale": list(sw.only_scale or ()),
                   "feeds": sw.feeds, "role": sw.role} for name, sw in sweeps.items()}
