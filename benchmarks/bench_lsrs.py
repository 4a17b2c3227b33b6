"""LSRS overhead: plain VAR vs LSRS for M in {1, 4, 32, 128} (ST=2), next to the FLOP ideal and the authors' code.

    .venv/bin/python benchmarks/bench_lsrs.py [--reps 2] [--threads N] [--quick] [--json out.json]

For each model (the mini models, and the official-config d16 architecture with random N(0, 0.02)
weights; CPU fp32, batch 2, cfg 1.5, top-k 900, top-p 0.96, per-sample RNG) it times, interleaved
in the same rounds (so drift hits all variants alike), one `lsrs.sampling.sampler.generate` call with the
plain sampler and with `lsrs.sampling.rejection.LSRSSelector` for every M, and prints:

* ours s/call (median over --reps rounds) and our ratio to our plain call;
* the FLOP-ideal ratio 1 + scorer FLOPs x candidates / plain VAR FLOPs, with the definitions of
  /work/shared/tools/time_official_lsrs.py: FlopCounterMode totals (matmuls and convolutions),
  the plain VAR FLOPs of one whole sampling call *including the decoder*, per image; the scorer's
  FLOPs of one candidate; candidates = the candidates our selector scores (M at each of the scales
  ST..K; none at M = 1, which is plain sampling). "ideal+Phi" adds the (M - 1) extra Phi convs per
  LSRS scale that building every candidate's e_k needs (the authors' code does the same work);
* overhead / ideal overhead = (ratio - 1) / (ideal - 1), required <= 1.5 for M >= 32 (smaller M
  are within the timing noise);
* for d16 the authors' code in the same run (time_official_lsrs.py on --lsrs-dir: their s/call and
  ratio to their plain sampler), and ours / authors, required <= 1 at every M.

A per-phase split of our calls (transformer, selector, of which scorer, f_hat update, decode) shows
where LSRS time goes. --profile prints a torch.profiler table of one LSRS call at the largest M
(printed automatically for a model that fails a requirement).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

OVERHEAD_LIMIT = 1.5  # our overhead may be at most this multiple of the FLOP-ideal overhead ...
NOISE_M = 32  # ... for M >= this (smaller overheads are within the timing noise)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=2, help="timed rounds (each: plain and every M); median reported. "
                    "The authors' tool gets the same --reps")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads for ours and the authors' code (default: torch.get_num_threads())")
    ap.add_argument("--quick", action="store_true", help="one timed round on d16 (fewer on mini), authors' reps 1")
    ap.add_argument("--M", default="1,4,32,128", help="comma-separated candidate counts (default: %(default)s)")
    ap.add_argument("--ST", type=int, default=2, help="first LSRS scale, 1-based (default: %(default)s, the paper's)")
    ap.add_argument("--batch", type=int, default=2, help="batch of both models (default: %(default)s)")
    ap.add_argument("--depth", type=int, default=16, help="VAR depth of the official-config model")
    ap.add_argument("--params", default=str(C.REPO / "params.yaml"), help="params file with the mini config")
    ap.add_argument("--mini-dir", default=str(C.REPO / "runs" / "mini"),
                    help="run root with tokenizer/ and var/d4/ of the trained mini models (runs/mini, or runs/cli)")
    ap.add_argument("--lsrs-dir", "--official-dir", dest="lsrs_dir", type=Path, default=C.OFFICIAL_LSRS_DIR,
                    help="work tree of github.com/dt-3t/LSRS (default: %(default)s)")
    ap.add_argument("--skip-authors", action="store_true", help="do not time the authors' code")
    ap.add_argument("--models", default="mini,d16", help="which models to run (default: %(default)s)")
    ap.add_argument("--profile", action="store_true", help="profile one LSRS call at the largest M per model")
    ap.add_argument("--json", metavar="PATH", help="also write all numbers to this JSON file")
    a = ap.parse_args(argv)
    a.Ms = sorted({int(m) for m in a.M.split(",") if m})
    if a.reps < 1 or not a.Ms or a.Ms[0] < 1:
        ap.error("--reps >= 1 and M >= 1 are required")
    return a


class TimedScoreFn:
    """Wraps a score_fn to accumulate the seconds spent in the scorer (inside the selector phase)."""

    def __init__(self, fn, timer: C.PhaseTimer):
        self.fn, self.timer = fn, timer

    def __call__(self, *args):
        with self.timer("scorer"):
            return self.fn(*args)


def flops_of(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def build(name: str, a):
    """(vae, var, scorer, description) of one benchmark model."""
    from lsrs.models.scorer import Scorer, ScorerConfig

    if name == "d16":
        vae, var = C.official_d16(a.depth)
        scorer = Scorer(ScorerConfig.preset("paper"))
        desc = (f"official-config vae_ch160v4096z32 + VAR d{a.depth}, random N(0,0.02) weights; "
                "scorer preset 'paper' (random N(0,0.02))")
    else:
        vae, var, desc = C.mini_models(a.params, a.mini_dir)
        scorer = Scorer(ScorerConfig.preset("mini"))
        desc += "; scorer preset 'mini' (random N(0,0.02))"
    C.normal_init_(scorer, seed=1)
    return vae, var, scorer, desc


def bench_model(name: str, a, sampling, result: dict) -> dict:
    from lsrs.sampling.rejection import LSRSSelector, schedule_from
    from lsrs.sampling.sampler import PerSampleRNG, TokenSampler, generate
    from lsrs.models.scorer import ScorerScoreFn, VarInput

    vae, var, scorer, desc = build(name, a)
    K = len(var.cfg.patch_nums)
    B = a.batch
    labels = torch.arange(B) % var.cfg.num_classes
    ids = torch.arange(B)
    print(f"-- {name}: {desc}")
    print(f"   batch {B}, {K} scales, ST={a.ST}, cfg {sampling.cfg}, top_k {sampling.top_k}, top_p {sampling.top_p}, "
          f"per-sample RNG", flush=True)
    timer = C.PhaseTimer()
    score_fn = TimedScoreFn(ScorerScoreFn(scorer, VarInput(vae, scorer.cfg.input_size)), timer)

    def selector(M, seed):
        plain = TokenSampler(PerSampleRNG(seed, ids), sampling.top_k, sampling.top_p)
        if M is None:
            return plain
        return LSRSSelector(sampler=plain, score_fn=score_fn, schedule=schedule_from(M, a.ST, K))

    def call(M, seed, tm=None):
        return generate(var, vae, labels, selector(M, seed), cfg=sampling.cfg, timer=tm)

    # FLOPs (the authors' definitions), counted during the warm-up of the plain sampler.
    var_flops = flops_of(lambda: call(None, 0)) / B
    x1 = torch.zeros(1, scorer.cfg.in_channels, scorer.cfg.input_size, scorer.cfg.input_size)
    one = torch.zeros(1, dtype=torch.long)
    scorer_flops = flops_of(lambda: scorer(x1, one, one))
    q = vae.quantize
    phi_flops = [flops_of(lambda si=si, pn=pn: q.scale_contribution(si, q.codes_to_map(torch.zeros(1, pn * pn, dtype=torch.long), pn)))
                 for si, pn in enumerate(var.cfg.patch_nums)]
    print(f"   FLOPs: plain VAR {var_flops / 1e9:.3f} GFLOP/image (incl. decode), scorer "
          f"{scorer_flops / 1e6:.2f} MFLOP/candidate, Phi {phi_flops[-1] / 1e6:.2f} MFLOP/candidate", flush=True)

    call(max(a.Ms), 0)  # warm-up of the largest candidate batch
    variants = [None, *a.Ms]
    times = {v: [] for v in variants}
    phases = {v: [] for v in variants}
    rounds = a.reps if not a.quick else 1
    if name != "d16":
        rounds = max(3, 5 * rounds)  # mini calls are short: more rounds for a stable median
    for r in range(rounds):
        for v in variants:
            timer.reset()
            times[v].append(C.timed(lambda: call(v, r + 1, timer)))
            phases[v].append(dict(timer.totals))
        if name == "d16":
            print(f"   round {r + 1}/{rounds}: " + ", ".join(
                f"{'plain' if v is None else f'M={v}'} {times[v][-1]:.2f}s" for v in variants), flush=True)

    plain_s = C.median(times[None])
    noise = max(C.spread(times[v]) for v in variants) if rounds > 1 else float("nan")
    rows = []
    for M in a.Ms:
        sched = schedule_from(M, a.ST, K)
        cands = sum(m for m in sched if m > 1)
        ideal = 1 + scorer_flops * cands / var_flops
        ideal_phi = ideal + sum((m - 1) * phi_flops[si] for si, m in enumerate(sched) if m > 1) / var_flops
        s = C.median(times[M])
        ratio = s / plain_s
        rel = (ratio - 1) / (ideal - 1) if ideal > 1 else None
        rows.append({"M": M, "candidates_per_image": cands, "s_per_call": s, "ratio": ratio, "ideal": ideal,
                     "ideal_with_phi": ideal_phi, "overhead_over_ideal": rel,
                     "overhead_pass": (rel is not None and rel <= OVERHEAD_LIMIT) if M >= NOISE_M else None,
                     "all_s": times[M]})
    phase_rows = []
    for v in variants:
        ph = {k: C.median([p.get(k, 0.0) for p in phases[v]]) for k in
              ("transformer", "sampling", "scorer", "f_hat update", "decode")}
        tot = C.median(times[v])
        phase_rows.append(["plain" if v is None else f"M={v}", tot, ph["transformer"], ph["sampling"], ph["scorer"],
                           ph["sampling"] - ph["scorer"], ph["f_hat update"], ph["decode"],
                           tot - ph["transformer"] - ph["sampling"] - ph["f_hat update"] - ph["decode"]])
    out = {"model": name, "description": desc, "batch": B, "rounds": rounds, "plain_s_per_call": plain_s,
           "plain_all_s": times[None], "noise_spread": noise, "var_gflop_per_image": var_flops / 1e9,
           "scorer_mflop_per_candidate": scorer_flops / 1e6, "phi_mflop_per_candidate": phi_flops[-1] / 1e6,
           "rows": rows, "phases": phase_rows, "_call": call}
    print()
    print(f"   our per-phase seconds per call ({name}, median of {rounds} rounds; 'selector' = LSRS draw + e_k + "
          "selection outside the scorer):")
    print(C.table(phase_rows, ["variant", "total", "transformer", "sampling", "scorer", "selector rest",
                               "f_hat upd", "decode", "other"]))
    print(flush=True)
    return out


def authors_timings(a, threads: int, reps: int) -> tuple[dict | None, dict, str | None]:
    why = C.check_peer_dir(a.lsrs_dir, "lsrs", "score_net.py")
    if why:
        return None, {}, why
    cmd = [sys.executable, str(C.TOOLS / "time_official_lsrs.py"), str(a.lsrs_dir), "--depth", str(a.depth),
           "--batch", str(a.batch), "--reps", str(reps), "--M", ",".join(map(str, a.Ms)), "--threads", str(threads)]
    print(f"-- authors' code (dt-3t/LSRS in {a.lsrs_dir}), same CPU, {threads} threads, {reps} reps", flush=True)
    rows, err = C.run_json_lines(cmd, timeout=900)
    plain = next((r for r in rows if r.get("impl", "").startswith("official-VAR")), None)
    per_m = {r["M"]: r for r in rows if r.get("impl") == "authors-LSRS"}
    return plain, per_m, err


def report(model: dict, authors_plain, authors: dict, a) -> bool:
    name = model["model"]
    has_auth = authors_plain is not None
    print(f"== {name}: LSRS vs plain VAR, batch {model['batch']}, ST={a.ST} "
          f"(ours: median of {model['rounds']} interleaved rounds, max spread {model['noise_spread']:.1%})")
    header = ["M", "cand/img", "ours s", "ours ratio", "ideal", "ideal+Phi", "ovh/ideal", f"<= {OVERHEAD_LIMIT}"]
    if has_auth:
        header += ["authors s", "authors ratio", "authors ideal", "ours/authors", "<= 1"]
    rows = [["plain", 0, model["plain_s_per_call"], 1.0, 1.0, 1.0, None, None]]
    if has_auth:
        rows[0] += [authors_plain["s_per_call"], 1.0, None, model["plain_s_per_call"] / authors_plain["s_per_call"],
                    None]
    ok = True
    for r in model["rows"]:
        ovh_pass = r["overhead_pass"]
        ovh_cell = "n/a" if ovh_pass is None else ("PASS" if ovh_pass else "FAIL")
        ok &= ovh_pass is not False
        row = [r["M"], r["candidates_per_image"], r["s_per_call"], r["ratio"], r["ideal"], r["ideal_with_phi"],
               r["overhead_over_ideal"], ovh_cell]
        if has_auth:
            au = authors.get(r["M"])
            if au:
                vs = r["s_per_call"] / au["s_per_call"]
                r.update(authors_s_per_call=au["s_per_call"], authors_ratio=au["relative_to_plain"],
                         authors_ideal=au["flop_ideal_relative"], ours_over_authors=vs, authors_pass=vs <= 1.0)
                ok &= vs <= 1.0
                row += [au["s_per_call"], au["relative_to_plain"], au["flop_ideal_relative"], vs,
                        "PASS" if vs <= 1.0 else "FAIL"]
            else:
                row += [None, None, None, None, "n/a"]
        rows.append(row)
    print(C.table(rows, header))
    print(f"   ideal = 1 + scorer FLOPs x candidates / plain VAR FLOPs (incl. decode); ours: "
          f"{model['var_gflop_per_image']:.2f} GFLOP/image, scorer {model['scorer_mflop_per_candidate']:.2f} "
          f"MFLOP/candidate" + (f"; authors' tool: {authors_plain['gflop_per_image']} GFLOP/image, scorer "
                                f"{authors_plain['scorer_gflop_per_candidate'] * 1e3:.2f} MFLOP/candidate "
                                f"(their candidates: (K-1)*M + 1, they also score at M=1)" if has_auth else ""))
    print(f"   ovh/ideal = (ours ratio - 1) / (ideal - 1); requirement <= {OVERHEAD_LIMIT} for M >= {NOISE_M} "
          "(n/a: below the timing noise)" + ("; ours/authors <= 1 at every M" if has_auth else ""))
    print(f"   [{'PASS' if ok else 'FAIL'}] {name}\n", flush=True)
    model["pass"] = ok
    return ok


def profile_lsrs(model: dict, M: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model["_call"](M, 99)
    print(f"-- profile of one of our LSRS calls on {model['model']} at M={M} (sorted by self CPU time):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), flush=True)


def main(argv=None) -> int:
    a = parse_args(argv)
    threads = C.setup_threads(a.threads)
    info = C.system_info(threads)
    C.print_header("bench_lsrs: LSRS sampling overhead", info)
    sampling = C.sampling_settings(a.params, cfg=1.5, top_k=900, top_p=0.96, rng="per-sample")
    result = {"system": info, "M": a.Ms, "ST": a.ST, "batch": a.batch, "models": {}}
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    all_ok = True
    for name in models:
        if name not in ("mini", "d16"):
            raise SystemExit(f"unknown model {name!r} (known: mini, d16)")
        with torch.inference_mode():
            model = bench_model(name, a, sampling, result)
        authors_plain, authors, why = None, {}, None
        if name == "d16":
            if a.skip_authors:
                why = "skipped (--skip-authors)"
            else:
                authors_plain, authors, why = authors_timings(a, threads, 1 if a.quick else a.reps)
                if authors_plain is None:
                    authors_plain, authors = None, {}
            if why:
                print(f"   authors' column {'incomplete' if authors else 'skipped'}: {why}")
        ok = report(model, authors_plain, authors, a)
        all_ok &= ok
        if (a.profile or not ok) and "_call" in model:
            with torch.inference_mode():
                profile_lsrs(model, max(a.Ms))
        model.pop("_call", None)
        result["models"][name] = {**model, "authors_plain": authors_plain, "authors": authors, "authors_skipped": why}
    print(f"overall: [{'PASS' if all_ok else 'FAIL'}]")
    C.write_json(a.json, result)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
