"""Sampler speed: the mini models' images/s, and one official-config d16 call next to the official VAR code.

    .venv/bin/python benchmarks/bench_sampler.py [--reps 3] [--threads N] [--quick] [--json out.json]

1. images/s of `lsrs.sampling.sampler.generate` on the mini models (trained ones in runs/mini if present, else
   random weights of the mini config), batch 64 and batch 1, with params.yaml's sampling settings.
2. One sampling call of the official architecture (vae_ch160v4096z32 + VAR d16, random N(0, 0.02)
   weights, CPU fp32, batch 2, 10 scales, cfg 1.5, top-k 900, top-p 0.96): median wall time of
   --reps calls after a warm-up, split into generate's phases.
3. In the same run, the official VAR code on the same CPU and thread count
   (/work/shared/tools/time_official_var.py on --official-dir), side by side, with the ratio
   official / ours. Ours must be at least as fast; if not, one call is profiled (torch.profiler) and
   the top operators are printed. --profile always prints that profile.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

PHASES = ("transformer", "sampling", "f_hat update", "decode")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="timed d16 calls after one warm-up (median reported; >= 3)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads for ours and the official code (default: torch.get_num_threads())")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (mini timings only a few calls; d16 3 reps)")
    ap.add_argument("--params", default=str(C.REPO / "params.yaml"), help="params file with the mini config")
    ap.add_argument("--mini-dir", default=str(C.REPO / "runs" / "mini"),
                    help="run root with tokenizer/ and var/d4/ of the trained mini models (runs/mini, or runs/cli)")
    ap.add_argument("--mini-batches", default="64,1", help="comma-separated mini batch sizes")
    ap.add_argument("--official-dir", type=Path, default=C.OFFICIAL_VAR_DIR,
                    help="work tree of github.com/FoundationVision/VAR (default: %(default)s)")
    ap.add_argument("--skip-official", action="store_true", help="do not time the official code")
    ap.add_argument("--skip-mini", action="store_true")
    ap.add_argument("--skip-d16", action="store_true")
    ap.add_argument("--depth", type=int, default=16, help="VAR depth of the official-config comparison")
    ap.add_argument("--batch", type=int, default=2, help="batch of the official-config comparison")
    ap.add_argument("--profile", action="store_true", help="always profile one d16 call and print the top operators")
    ap.add_argument("--json", metavar="PATH", help="also write all numbers to this JSON file")
    a = ap.parse_args(argv)
    if a.reps < 1:
        ap.error("--reps must be >= 1")
    return a


# --------------------------------------------------------------------------- mini
def bench_mini(a, sampling, result: dict) -> None:
    from lsrs.sampling.plan import make_selector
    from lsrs.sampling.sampler import generate

    vae, var, source = C.mini_models(a.params, a.mini_dir)
    print(f"-- 1. mini sampler: {source}")
    print(f"   sampling: cfg {sampling.cfg}, top_k {sampling.top_k}, top_p {sampling.top_p}, rng {sampling.rng}; "
          f"{len(var.cfg.patch_nums)} scales, VAR depth {var.cfg.depth} width {var.cfg.embed_dim}, "
          f"{vae.cfg.image_size}px images")
    rows, out = [], []
    for b in [int(x) for x in a.mini_batches.split(",") if x]:
        labels = torch.arange(b) % var.cfg.num_classes
        ids = torch.arange(b)

        def call(seed):
            generate(var, vae, labels, make_selector(sampling, ids, seed), cfg=sampling.cfg)

        call(0)  # warm-up
        n = (3 if a.quick else 5) if b >= 16 else (10 if a.quick else 30)
        times = [C.timed(lambda r=r: call(r + 1)) for r in range(n)]
        med = C.median(times)
        rows.append([b, n, med, C.spread(times), b / med])
        out.append({"batch": b, "calls": n, "s_per_call_median": med, "spread": C.spread(times),
                    "images_per_s": b / med})
    print(C.table(rows, ["batch", "calls", "s/call (median)", "spread", "images/s"]))
    print(flush=True)
    result["mini"] = {"source": source, "rows": out}


# --------------------------------------------------------------------------- d16
def ours_d16(a, sampling):
    """Median seconds per call (total and per phase) of our sampler on the official d16 architecture."""
    from lsrs.sampling.plan import make_selector
    from lsrs.sampling.sampler import generate

    vae, var = C.official_d16(a.depth)
    labels = torch.arange(a.batch) % 1000
    ids = torch.arange(a.batch)
    timer = C.PhaseTimer()

    def call(seed, tm=None):
        return generate(var, vae, labels, make_selector(sampling, ids, seed), cfg=sampling.cfg, timer=tm)

    call(0)  # warm-up
    totals, phases = [], {p: [] for p in PHASES}
    for r in range(a.reps):
        timer.reset()
        totals.append(C.timed(lambda: call(r + 1, timer)))
        for p in PHASES:
            phases[p].append(timer.totals.get(p, 0.0))
        print(f"   ours rep {r + 1}/{a.reps}: {totals[-1]:.3f} s", flush=True)
    return (vae, var, labels, ids, call), totals, phases


def profile_call(call, top: int = 25) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        call(123)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def bench_d16(a, sampling, threads: int, result: dict) -> bool:
    print(f"-- 2. official-config sampling call: vae_ch160v4096z32 + VAR d{a.depth}, random N(0,0.02) weights, "
          f"CPU fp32, batch {a.batch}, 10 scales, cfg {sampling.cfg}, top_k {sampling.top_k}, top_p {sampling.top_p}, "
          f"rng {sampling.rng}; median of {a.reps} calls after a warm-up", flush=True)
    handles, totals, phases = ours_d16(a, sampling)
    ours_total = C.median(totals)
    ours = {p: C.median(v) for p, v in phases.items()}
    ours["other"] = max(ours_total - sum(ours.values()), 0.0)

    official, why = None, None
    if a.skip_official:
        why = "skipped (--skip-official)"
    else:
        why = C.check_peer_dir(a.official_dir, "var", "models/var.py")
    if why is None:
        print(f"-- 3. official VAR code ({a.official_dir}) on the same CPU, {threads} threads", flush=True)
        cmd = [sys.executable, str(C.TOOLS / "time_official_var.py"), str(a.official_dir), "--depth", str(a.depth),
               "--batch", str(a.batch), "--reps", str(max(a.reps, 3)), "--threads", str(threads)]
        rows, err = C.run_json_lines(cmd, timeout=600)
        if rows:
            official = rows[-1]
        else:
            why = f"the official timing tool failed: {err}"
    if why:
        print(f"   official column skipped: {why}")

    off_total = official["s_per_call_median"] if official else None
    off_dec = official["decode_share"] * official["s_per_call_median"] if official else None

    def ratio(off, ours_s):
        return off / ours_s if off is not None and ours_s > 0 else None

    rows = []
    for p in (*PHASES, "other"):
        off = off_dec if p == "decode" else None
        rows.append([p, ours[p], ours[p] / ours_total, off, ratio(off, ours[p])])
    nd_ours = ours_total - ours["decode"]
    nd_off = off_total - off_dec if official else None
    rows.append(["all but decode", nd_ours, nd_ours / ours_total, nd_off, ratio(nd_off, nd_ours)])
    rows.append(["total (median)", ours_total, 1.0, off_total, ratio(off_total, ours_total)])
    rows.append(["total (min)", min(totals), None, official["s_per_call_min"] if official else None,
                 ratio(official["s_per_call_min"], min(totals)) if official else None])
    print()
    print(f"d{a.depth} batch {a.batch}, {threads} threads, seconds per sampling call "
          f"(ours: spread {C.spread(totals):.1%} over {len(totals)} reps):")
    print(C.table(rows, ["phase", "ours s", "ours share", "official s", "official/ours"]))
    print("   'other' = CFG logit mix, next-scale embedding, setup (outside the timer hook); "
          "the official tool only splits out the decoder (decode_share).")
    passed = None
    if official:
        passed = ours_total <= off_total
        verdict = "PASS" if passed else "FAIL"
        print(f"\n[{verdict}] ours {ours_total:.3f} s/call vs official {off_total:.3f} s/call: "
              f"official/ours = {off_total / ours_total:.3f} (requirement: >= 1.0)")
    result["d16"] = {"depth": a.depth, "batch": a.batch, "threads": threads, "ours_s_per_call": totals,
                     "ours_median": ours_total, "ours_phases_median": ours, "official": official,
                     "official_skipped": why, "pass": passed}
    if a.profile or passed is False:
        print("\n-- profile of one of our d16 calls (torch.profiler, sorted by self CPU time):")
        print(profile_call(handles[-1]))
    print(flush=True)
    return passed is not False


def main(argv=None) -> int:
    a = parse_args(argv)
    threads = C.setup_threads(a.threads)
    info = C.system_info(threads)
    C.print_header("bench_sampler: VAR sampler speed", info)
    sampling = C.sampling_settings(a.params, cfg=1.5, top_k=900, top_p=0.96)
    result = {"system": info, "sampling": sampling.__dict__}
    ok = True
    with torch.inference_mode():
        if not a.skip_mini:
            bench_mini(a, sampling, result)
        if not a.skip_d16:
            ok = bench_d16(a, sampling, threads, result)
    C.write_json(a.json, result)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
