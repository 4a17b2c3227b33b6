"""Compare our refcheck outputs with an official-code reference set, using the set's README tolerances.

Our side is always the *full layout* that `lsrs.verify.refcheck.compute_outputs` returns: one dict per output
file, every tensor at full length (logits (N, 680, V), hidden states (N, 680, C), ...). The reference side
may be stored in the full layout or in the *reduced layout*, whose files carry a `reduction` entry:

* big per-token tensors are kept only at `reduction['positions']` (dim 1), so we cut ours to match;
* `<key>_summary` entries summarise `<key>` at all L positions (logsumexp, top-5 indices, top-6 values
  and a seeded random-projection sketch), so we summarise our full tensor the same way;
* tensors listed in `reduction['derived']` are not stored because they are exact functions of stored
  ones, so we rebuild them from the reference before comparing.

Each reference leaf becomes one `Row`. A row is PASS or FAIL under the tolerance of its quantity, INFO when
the README marks it as diagnostic only (VQ distance diagnostics, chaotic `more_smooth` runs) or when an
optional key (an input, a diagnostic) is absent on our side, and MISSING when a required key is absent.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

FILES = ("ref_vqvae.pth", "ref_next_ar_inputs.pth", "ref_var_teacher_forced.pth", "ref_inference.pth",
         "ref_units.pth")
VERDICTS = ("PASS", "FAIL", "INFO", "MISSING")
PROBLEM_VERDICTS = frozenset({"FAIL", "MISSING"})
DEFAULT_SKETCH_SEED_BASE = 20240

# --- the README's tolerance table ---------------------------------------------------------------
ABS_TOL = {  # quantity -> atol (rtol 0)
    "encoder_out": 1e-4, "f": 1e-4,
    "fhat_per_scale": 1e-5, "fhat_after_step": 1e-5, "x_BLCv_wo_first_l": 1e-5, "next_inputs": 1e-5,
    "f_hat_final": 1e-5,
    "decoded_raw": 1e-4, "decoded_img": 1e-4, "img_01": 1e-4,
    "ce_mean": 1e-5,
    "bicubic_up_out": 1e-6, "area_down_out": 1e-6,
    "phi_ticks": 1e-12,
}
LOGIT_TOL = (1e-4, 1e-5)          # |Δ| <= atol + rtol·|ref| for logits, hidden states and their summaries
LOGIT_LIKE = frozenset({"logits", "cfg_logits", "uncond_logits", "hidden"})
CFG_SCALED = frozenset({"cfg_logits"})   # (1+t)·cond − t·uncond amplifies errors: atol·(1 + 2·cfg)
DEFAULT_FLOAT_TOL = 1e-4
FP16_RTOL = 2.0 ** -11            # references stored in half precision carry its rounding
NEAR_TIE = 2e-4                   # top5_idx: a rank may differ where the reference gap to a neighbour is smaller
VQ_GAP = 1e-4                     # VQ tokens may differ where the reference nn_dist_gap is smaller
N_KEPT_FRACTION = 0.01            # n_kept: top-p boundary ties may change up to 1% of positions
SMOOTH_CHECKED_SCALES = 5         # more_smooth runs are chaotic: only idx_Bl of the first 5 scales count

# --- which reference keys we may leave out ---------------------------------------------------------
STAGE_INPUTS = {  # file -> keys that are inputs of the stage; compared when we echo them, optional otherwise
    "ref_vqvae.pth": {"images", "patch_nums"},
    "ref_next_ar_inputs.pth": {"idx_Bl"},
    "ref_var_teacher_forced.pth": {"labels", "x_BLCv_wo_first_l"},
    "ref_inference.pth": {"labels", "kwargs"},
    "ref_units.pth": {"sampler_logits", "bicubic_up_in", "area_down_in", "phi_ticks"},
}
DIAGNOSTICS = frozenset({"nn_dist_gap", "nn_dist_min"})          # never pass/fail, only reported
OPTIONAL_OUTPUTS = frozenset({"hidden", "n_kept"})
IMAGE_TWINS = {"decoded_raw": ("decoded_img", "img_01"), "decoded_img": ("decoded_raw",), "img_01": ("decoded_raw",)}


# ==================================================================================================
# rows
# ==================================================================================================
@dataclass
class Stats:
    """The numbers behind a row's statistic, kept so that list elements can be merged into one row."""
    numel: int = 0
    n_equal: int | None = None        # exact comparisons: entries that agree
    n_excused: int = 0                # differing entries a rule allows (near ties, tiny VQ gaps, n_kept quota)
    max_abs: float | None = None      # float comparisons
    max_rel: float | None = None
    tol_used: float | None = None     # max |Δ| / allowed |Δ| (1.0 = at the tolerance)
    worst: str = ""                   # which list element is worst, once merged


@dataclass
class Row:
    file: str
    path: str
    verdict: str          # PASS / FAIL / INFO / MISSING
    kind: str             # dtype and shape of the reference value, "value", "optional", ...
    statistic: str
    tolerance: str
    note: str = ""
    stats: Stats | None = field(default=None, repr=False, compare=False)

    @property
    def is_problem(self) -> bool:
        return self.verdict in PROBLEM_VERDICTS


def has_problems(rows: Iterable[Row]) -> bool:
    return any(r.is_problem for r in rows)


def verdict_counts(rows: Iterable[Row]) -> dict[str, int]:
    c = Counter(r.verdict for r in rows)
    return {v: c.get(v, 0) for v in VERDICTS}


# ==================================================================================================
# summaries (reduced layout)
# ==================================================================================================
def sketch_matrix(d: int, k: int, seed_base: int = DEFAULT_SKETCH_SEED_BASE) -> torch.Tensor:
    """The reference's random projection R_d (d, k), float64: N(0, 1) entries from a seeded numpy
    RandomState, divided by sqrt(d) so a sketch has the scale of one vector entry."""
    rows = np.random.RandomState(seed_base + d).standard_normal((d, k))
    return torch.from_numpy(rows / math.sqrt(d))


def sketch(x: torch.Tensor, k: int, seed_base: int = DEFAULT_SKETCH_SEED_BASE) -> torch.Tensor:
    """x (..., d) -> x @ R_d in float64, stored as float32 like the reference."""
    return (x.double() @ sketch_matrix(x.shape[-1], k, seed_base)).float()


def logit_summary(x: torch.Tensor, k: int = 16, seed_base: int = DEFAULT_SKETCH_SEED_BASE) -> dict:
    """Per-position summary of logits x (B, L, V): what the reduced layout stores at every position.
    The top-k runs on the float32 values so that ties resolve like the reference's."""
    x = x.float()
    top = x.topk(6, dim=-1, largest=True, sorted=True)
    return {"lse": torch.logsumexp(x.double(), -1).float(),
            "top5_idx": top.indices[..., :5].to(torch.int16),
            "top6_val": top.values,
            "sketch": sketch(x, k, seed_base)}


def hidden_summary(x: torch.Tensor, k: int = 8, seed_base: int = DEFAULT_SKETCH_SEED_BASE) -> dict:
    """Hidden states keep only a sketch: their values have no ranking that matters."""
    return {"sketch": sketch(x, k, seed_base)}


def summarize_like(ref_summary: Any, ours: Any, length: int, seed_base: int) -> Any:
    """Summarise our full-length tensor (or dict of tensors) in the shape of a reference summary;
    None when ours cannot be summarised (wrong shape), so the comparison reports it."""
    if isinstance(ours, dict) and isinstance(ref_summary, dict):
        out = {name: summarize_like(ref_summary[name], ours[name], length, seed_base)
               for name in ref_summary if name in ours}
        return {name: s for name, s in out.items() if s is not None}
    if not (isinstance(ours, torch.Tensor) and isinstance(ref_summary, dict) and "sketch" in ref_summary):
        return None
    if ours.ndim != 3 or ours.shape[1] != length:
        return None
    k = ref_summary["sketch"].shape[-1]
    return logit_summary(ours, k, seed_base) if "lse" in ref_summary else hidden_summary(ours, k, seed_base)


def reduce_like(ref: dict, ours: dict, reduction: dict, seed_base: int) -> dict:
    """Our full-layout node in the reference's reduced layout (a new dict; ours is not modified):
    add `<key>_summary` from our full `<key>`, and cut full-length tensors to the stored positions."""
    positions, length = reduction.get("positions"), int(reduction.get("L", 680))
    out = dict(ours)
    for key, ref_value in ref.items():
        base = key[: -len("_summary")]
        if key.endswith("_summary") and key not in out and base in out:
            summary = summarize_like(ref_value, out[base], length, seed_base)
            if summary is not None:
                out[key] = summary
    for key, ref_value in ref.items():
        if key == "reduction" or key.endswith("_summary") or key not in out:
            continue
        if isinstance(ref_value, dict) and isinstance(out[key], dict):
            out[key] = reduce_like(ref_value, out[key], reduction, seed_base)
        elif positions is not None and _stored_at_positions(ref_value, out[key], len(positions), length):
            out[key] = out[key][:, positions]
    return out


def _stored_at_positions(ref_value: Any, ours: Any, n_positions: int, length: int) -> bool:
    """True where the reference keeps only the position subset of a tensor we hold in full."""
    if not (isinstance(ref_value, torch.Tensor) and isinstance(ours, torch.Tensor)):
        return False
    return (ref_value.ndim >= 2 and ours.ndim == ref_value.ndim and n_positions != length
            and ref_value.shape[1] == n_positions and ours.shape[1] == length
            and ref_value.shape[0] == ours.shape[0] and ref_value.shape[2:] == ours.shape[2:])


# ==================================================================================================
# derived tensors (reduced layout)
# ==================================================================================================
_OTHER_FILE = re.compile(r"(ref_\w+\.pth):(\w+)")
_CLAMP = re.compile(r"clamp\((\w+), -1, 1\)")
_TO_01 = re.compile(r"\(clamp\((\w+), -1, 1\) \+ 1\) \* 0\.5")


def rebuild_derived(ref: dict, load: Callable[[str], Any]) -> tuple[dict, dict[int, str], list[str]]:
    """Put back the tensors a reduced set leaves out (`reduction['derived']`: key -> recipe).

    Returns the completed object (a copy), {id(tensor): recipe} of the rebuilt tensors (their rows get a
    note), and the recipes we could not interpret (reported, never silently dropped)."""
    recipes = (ref.get("reduction") or {}).get("derived") or {}
    if not recipes:
        return ref, {}, []
    ref, rebuilt, unknown = dict(ref), {}, []
    for key, recipe in recipes.items():
        if m := _OTHER_FILE.fullmatch(recipe):
            if key not in ref:
                ref[key] = load(m.group(1))[m.group(2)]
                rebuilt[id(ref[key])] = recipe
        elif m := _TO_01.fullmatch(recipe):
            ref = _derive_everywhere(ref, key, m.group(1), lambda t: t.clamp(-1, 1).add(1).mul(0.5), recipe, rebuilt)
        elif m := _CLAMP.fullmatch(recipe):
            ref = _derive_everywhere(ref, key, m.group(1), lambda t: t.clamp(-1, 1), recipe, rebuilt)
        else:
            unknown.append(f"{key} = {recipe}")
    return ref, rebuilt, unknown


def _derive_everywhere(node: dict, key: str, source: str, fn, recipe: str, rebuilt: dict) -> dict:
    """Add node[key] = fn(node[source]) in this dict and every nested dict (e.g. each inference run)."""
    node = dict(node)
    if isinstance(node.get(source), torch.Tensor) and key not in node:
        node[key] = fn(node[source])
        rebuilt[id(node[key])] = recipe
    for name, value in node.items():
        if isinstance(value, dict) and name != "reduction":
            node[name] = _derive_everywhere(value, key, source, fn, recipe, rebuilt)
    return node


# ==================================================================================================
# tolerance rules
# ==================================================================================================
@dataclass(frozen=True)
class Where:
    """Where a leaf sits: its file, dict keys from the file root, and its index when it is a list element."""
    file: str
    keys: tuple[str, ...]
    index: int | None = None

    @property
    def name(self) -> str:
        return self.keys[-1] if self.keys else ""

    @property
    def quantity(self) -> str:
        """The tensor a summary entry summarises ('logits' for logits_summary/lse), else the leaf name."""
        for key in reversed(self.keys):
            if key.endswith("_summary"):
                return key[: -len("_summary")]
        return self.name

    def path(self) -> str:
        return "/".join(self.keys) + (f"[{self.index}]" if self.index is not None else "")


@dataclass
class Context:
    """What the rules need beyond the two values."""
    run: dict | None = None                   # kwargs of the inference run being walked
    top6_val: torch.Tensor | None = None      # the reference's top-6 values next to a top5_idx
    vq_gaps: list | None = None               # the reference's nn_dist_gap, per scale
    rebuilt: dict[int, str] = field(default_factory=dict)


def num(x: float) -> str:
    """Compact tolerance numbers: 1e-4, 4e-4, 0.5, 9e-4."""
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:g}"
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def float_tolerance(where: Where, ctx: Context) -> tuple[float, float, str]:
    """(atol, rtol, label) for a float leaf, following the README table."""
    quantity = where.quantity
    if quantity in DIAGNOSTICS:
        return DEFAULT_FLOAT_TOL, 0.0, "diagnostic, not checked"
    if "hidden" in where.keys or "hidden_summary" in where.keys or quantity in LOGIT_LIKE:
        atol, rtol = LOGIT_TOL
    elif quantity in ABS_TOL:
        atol, rtol = ABS_TOL[quantity], 0.0
    elif quantity in STAGE_INPUTS.get(where.file, ()):
        atol, rtol = 0.0, 0.0
    else:
        return DEFAULT_FLOAT_TOL, 0.0, f"|Δ| ≤ {num(DEFAULT_FLOAT_TOL)} (default)"
    label = f"|Δ| ≤ {num(atol)}" + (f" + {num(rtol)}·|ref|" if rtol else "")
    if quantity in CFG_SCALED and ctx.run is not None:
        cfg = float(ctx.run.get("cfg", 0.0))
        atol *= 1 + 2 * cfg
        label = f"|Δ| ≤ {num(atol)} + {num(rtol)}·|ref|  (atol·(1+2·cfg), cfg {cfg:g})"
    return atol, rtol, label


def is_info_only(where: Where, ctx: Context) -> bool:
    """Diagnostics and everything chaotic: reported, never a failure."""
    if where.name in DIAGNOSTICS:
        return True
    if ctx.run is not None and bool(ctx.run.get("more_smooth", False)):
        checked = where.name == "idx_Bl" and where.index is not None and where.index < SMOOTH_CHECKED_SCALES
        return not checked
    return False


def run_note(ctx: Context) -> str:
    """Why a run's rows may behave specially: its tokens depend on the RNG stream, or it is chaotic."""
    if ctx.run is None:
        return ""
    if bool(ctx.run.get("more_smooth", False)):
        return "more_smooth (chaotic)"
    return "" if int(ctx.run.get("top_k", 0)) == 1 else "RNG run"


# ==================================================================================================
# leaf comparisons
# ==================================================================================================
def _fmt_shape(t: torch.Tensor) -> str:
    return "(" + ",".join(str(s) for s in t.shape) + ")"


def _kind(t: torch.Tensor) -> str:
    return f"{str(t.dtype).replace('torch.', '')} {_fmt_shape(t)}"


def compare_float(ref: torch.Tensor, ours: torch.Tensor, atol: float, rtol: float) -> tuple[bool, Stats, str]:
    """Elementwise |Δ| ≤ atol + rtol·|ref| over finite values; inf/nan must sit at the same places."""
    r, o = ref.double(), ours.double()
    finite_r, finite_o = torch.isfinite(r), torch.isfinite(o)
    same_nonfinite = bool((finite_r == finite_o).all()) and bool(
        ((r == o) | (r.isnan() & o.isnan()))[~finite_r].all())
    both = finite_r & finite_o
    diff, ref_abs = (r - o).abs()[both], r.abs()[both]
    allowed = atol + rtol * ref_abs
    stats = Stats(numel=ref.numel(), max_abs=0.0, max_rel=0.0, tol_used=0.0)
    if diff.numel():
        stats.max_abs = float(diff.max())
        stats.max_rel = float((diff / ref_abs.clamp_min(1e-6)).max())
        over = diff / allowed.clamp_min(1e-300)
        stats.tol_used = float(over.max()) if bool((allowed > 0).all()) else (
            0.0 if stats.max_abs == 0 else math.inf)
    ok = same_nonfinite and bool((diff <= allowed).all())
    return ok, stats, "" if same_nonfinite else "inf/nan pattern differs"


def near_tie_ranks(top6_val: torch.Tensor) -> torch.Tensor:
    """(…, 5) mask of top-5 ranks whose reference value is within NEAR_TIE of a neighbouring rank:
    float noise may legitimately swap those."""
    v = top6_val.double()
    below = v[..., :5] - v[..., 1:6]
    above = torch.full_like(below, math.inf)
    above[..., 1:] = v[..., :4] - v[..., 1:5]
    return torch.minimum(above, below) < NEAR_TIE


def compare_exact(ref: torch.Tensor, ours: torch.Tensor, where: Where, ctx: Context) -> tuple[bool, Stats]:
    """Integer/bool leaves: exact, with the README's three exceptions (near ties, tiny VQ gaps, n_kept)."""
    differ = ref.long() != ours.long()
    n_diff = int(differ.sum())
    stats = Stats(numel=ref.numel(), n_equal=ref.numel() - n_diff)
    if n_diff == 0:
        return True, stats
    name = where.name
    if name == "top5_idx" and ctx.top6_val is not None:
        stats.n_excused = int((differ & near_tie_ranks(ctx.top6_val)).sum())
        return stats.n_excused == n_diff, stats
    if name in ("idx_Bl", "idx_BL") and ctx.vq_gaps is not None:
        gaps = ctx.vq_gaps[where.index] if name == "idx_Bl" else torch.cat(list(ctx.vq_gaps), 1)
        stats.n_excused = int((differ & (gaps < VQ_GAP)).sum())
        return stats.n_excused == n_diff, stats
    if name == "n_kept":
        allowed = n_diff <= N_KEPT_FRACTION * ref.numel()
        stats.n_excused = n_diff if allowed else 0
        return allowed, stats
    return False, stats


def exact_tolerance_text(where: Where, ctx: Context) -> str:
    if where.name == "top5_idx":
        return f"exact except near ties (ref gap < {num(NEAR_TIE)})"
    if where.name in ("idx_Bl", "idx_BL") and ctx.vq_gaps is not None:
        return f"exact except ref nn_dist_gap < {num(VQ_GAP)}"
    if where.name == "n_kept":
        return f"≤ {N_KEPT_FRACTION:.0%} of positions differ"
    return "exact"


def describe(stats: Stats) -> str:
    """Human-readable statistic: equal counts for exact leaves, errors (and tolerance use) for floats."""
    if stats.n_equal is not None:
        text = f"{stats.n_equal}/{stats.numel} equal"
        n_diff = stats.numel - stats.n_equal
        if n_diff:
            text += f" ({stats.n_excused} of {n_diff} differences allowed)"
    else:
        text = f"max|Δ| {stats.max_abs:.2e}, rel {stats.max_rel:.1e}"
        if stats.tol_used is not None and math.isfinite(stats.tol_used):
            text += f", {stats.tol_used:.0%} of tol"
    return text + (f", worst {stats.worst}" if stats.worst else "")


def compare_tensor(ref: torch.Tensor, ours: Any, where: Where, ctx: Context) -> Row:
    """One tensor leaf: shape and dtype class first, then the quantity's tolerance rule."""
    info = is_info_only(where, ctx)
    run = run_note(ctx)
    notes = [run + (": not checked" if info and run else ""), _rebuilt_note(ref, ctx)]
    floating = ref.dtype.is_floating_point
    if floating:
        atol, rtol, tolerance = float_tolerance(where, ctx)
        if ref.dtype == torch.float16:
            rtol, tolerance = max(rtol, FP16_RTOL), tolerance + " (ref stored fp16)"
    else:
        tolerance = exact_tolerance_text(where, ctx)
    row = Row(where.file, where.path(), "INFO" if info else "FAIL", _kind(ref), "", tolerance,
              "; ".join(n for n in notes if n))
    if not isinstance(ours, torch.Tensor):
        return replace(row, statistic=f"ours is {type(ours).__name__}")
    if ours.shape != ref.shape:
        return replace(row, statistic=f"ours has shape {_fmt_shape(ours)}")
    if not floating and ours.dtype.is_floating_point:
        return replace(row, statistic=f"ours is {str(ours.dtype).replace('torch.', '')}")
    if floating:
        ok, stats, problem = compare_float(ref, ours, atol, rtol)
    else:
        (ok, stats), problem = compare_exact(ref, ours, where, ctx), ""
    statistic = describe(stats) + (f", {problem}" if problem else "")
    verdict = "INFO" if info else ("PASS" if ok else "FAIL")
    return replace(row, verdict=verdict, statistic=statistic, stats=stats)


def _rebuilt_note(ref: torch.Tensor, ctx: Context) -> str:
    recipe = ctx.rebuilt.get(id(ref))
    return f"ref rebuilt: {recipe}" if recipe else ""


def _plain_equal(ref: Any, ours: Any) -> bool:
    if isinstance(ours, torch.Tensor):
        ours = ours.tolist()
    return bool(ref == ours)


def compare_value(ref: Any, ours: Any, where: Where) -> Row:
    """Plain Python leaves (scale lists, numbers) and dicts of them (run kwargs, one row): equal or not."""
    if isinstance(ref, dict):
        ours = ours if isinstance(ours, dict) else {}
        bad = [k for k in ref if k not in ours or not _plain_equal(ref[k], ours[k])]
        statistic = f"{len(ref) - len(bad)}/{len(ref)} entries equal"
        if bad:
            statistic += "; differ: " + ", ".join(f"{k} ref {ref[k]!r} vs ours {ours.get(k, 'absent')!r}" for k in bad)
        return Row(where.file, where.path(), "FAIL" if bad else "PASS", f"dict of {len(ref)}", statistic, "exact")
    equal = _plain_equal(ref, ours)
    return Row(where.file, where.path(), "PASS" if equal else "FAIL", "value",
               "equal" if equal else f"ref {ref!r} vs ours {ours!r}", "exact")


def _is_plain(value: Any) -> bool:
    return not isinstance(value, (dict, list, tuple, torch.Tensor)) or (
        isinstance(value, (list, tuple)) and all(_is_plain(v) for v in value))


# ==================================================================================================
# walking a file
# ==================================================================================================
def is_optional(key: str, ours_parent: dict, file: str) -> bool:
    """May our outputs leave this reference key out? Inputs, diagnostics, optional outputs and an image
    given in its other form (raw vs clamped) may be absent."""
    base = key[: -len("_summary")] if key.endswith("_summary") else key
    if base in STAGE_INPUTS.get(file, ()) or base in DIAGNOSTICS or base in OPTIONAL_OUTPUTS:
        return True
    return any(twin in ours_parent for twin in IMAGE_TWINS.get(key, ()))


def walk(ref: Any, ours: Any, where: Where, ctx: Context) -> Iterator[Row]:
    """One row per reference leaf, reference keys driving the walk (our extra keys are ignored)."""
    if isinstance(ref, dict):
        yield from _walk_dict(ref, ours, where, ctx)
    elif isinstance(ref, (list, tuple)) and ref and isinstance(ref[0], (torch.Tensor, dict, list, tuple)):
        if not isinstance(ours, (list, tuple)) or len(ours) != len(ref):
            got = f"length {len(ours)}" if isinstance(ours, (list, tuple)) else type(ours).__name__
            yield Row(where.file, where.path(), "FAIL", f"list of {len(ref)}", f"ours: {got}", "same length")
            return
        for i, (r, o) in enumerate(zip(ref, ours)):
            yield from walk(r, o, replace(where, index=i), ctx)
    elif isinstance(ref, torch.Tensor):
        yield compare_tensor(ref, ours, where, ctx)
    else:
        yield compare_value(ref, ours, where)


def _walk_dict(ref: dict, ours: Any, where: Where, ctx: Context) -> Iterator[Row]:
    if ref and where.keys and all(_is_plain(v) for v in ref.values()):   # e.g. a run's kwargs: one row
        yield compare_value(ref, ours, where)
        return
    if isinstance(ref.get("kwargs"), dict):          # an inference run: its kwargs select the rules
        ctx = replace(ctx, run=ref["kwargs"])
    if isinstance(ref.get("top6_val"), torch.Tensor):  # a logit summary: near ties need the ref values
        ctx = replace(ctx, top6_val=ref["top6_val"])
    ours = ours if isinstance(ours, dict) else {}
    for key, value in ref.items():
        if key == "reduction":
            continue
        sub = Where(where.file, where.keys + (key,))
        if key in ours:
            yield from walk(value, ours[key], sub, ctx)
        elif is_optional(key, ours, where.file):
            yield Row(where.file, sub.path(), "INFO", "optional", "not in our outputs", "—")
        else:
            yield Row(where.file, sub.path(), "MISSING", "required", "not in our outputs", "—")


def compare_file(file: str, ref: dict, ours: dict, load: Callable[[str], Any],
                 seed_base: int = DEFAULT_SKETCH_SEED_BASE) -> list[Row]:
    """Rows for one reference file. `load(name)` reads another file of the set (derived tensors)."""
    ref, rebuilt, unknown = rebuild_derived(ref, load)
    reduction = ref.get("reduction")
    if isinstance(reduction, dict):
        ours = reduce_like(ref, ours, reduction, seed_base)
    ctx = Context(rebuilt=rebuilt)
    if file == "ref_vqvae.pth" and isinstance(ref.get("nn_dist_gap"), (list, tuple)):
        ctx.vq_gaps = list(ref["nn_dist_gap"])
    rows = list(walk(ref, ours, Where(file, ()), ctx))
    rows += [Row(file, recipe.split(" = ")[0], "INFO", "derived", f"recipe not understood: {recipe}", "—")
             for recipe in unknown]
    return rows


def sketch_seed_base(ref_dir: Path) -> int:
    meta = ref_dir / "meta.json"
    if not meta.is_file():
        return DEFAULT_SKETCH_SEED_BASE
    sketch_meta = json.loads(meta.read_text()).get("reduction", {}).get("sketch", {})
    return int(sketch_meta.get("seed_base", DEFAULT_SKETCH_SEED_BASE))


def compare_outputs(ref_dir: str | Path, outputs: dict[str, dict], files: Iterable[str] = FILES) -> list[Row]:
    """Compare our full-layout outputs (file name -> object) with every reference file present in ref_dir."""
    ref_dir = Path(ref_dir)
    seed_base, cache = sketch_seed_base(ref_dir), {}

    def load(name: str):
        if name not in cache:
            cache[name] = torch.load(ref_dir / name, map_location="cpu", weights_only=False)
        return cache[name]

    rows: list[Row] = []
    for file in files:
        if not (ref_dir / file).is_file():
            continue
        if file not in outputs:
            rows.append(Row(file, "", "MISSING", "file", "not computed", "—"))
            continue
        rows += compare_file(file, load(file), outputs[file], load, seed_base)
    return rows
