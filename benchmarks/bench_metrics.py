"""Evaluation speed on the mini profile: 10,000 images, features and every metric (generation excluded).

    .venv/bin/python benchmarks/bench_metrics.py [--reps 3] [--threads N] [--n 10000] [--json out.json]

Rows (median of --reps runs, each after one warm-up):

1. ours, against a precomputed reference: `evaluate_images` on N images (feature pass, FID with its
   decomposition, sFID, IS, precision/recall against N reference images), no feature cache. This is
   what `lsrs evaluate` does per sample set and must stay under 60 s for 10,000 images on 2 cores.
2. ours, reference included: `build_reference` on N other images + row 1, the same work as 3.
3. baseline, measured in the same run: torch-fidelity's `calculate_metrics` (isc, fid, prc) on the same
   N generated and N reference images with the same registered extractor (no sFID, no decomposition).

The ratio is baseline / ours for the same work (row 3 / row 2). Images are the Fashion-MNIST test
(generated) and train (reference) splits when installed, else synthetic; the evaluator is the trained
one in --evaluator-dir when present, else random weights of the same architecture (same cost).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from lsrs.core.checkpoint import atomic_save, atomic_write_text, config_to_json  # noqa: E402
from lsrs.data.fashion_mnist import DEFAULT_FASHION_MNIST, load_fashion_mnist  # noqa: E402
from lsrs.evaluation.reference import build_reference, evaluate_images  # noqa: E402
from lsrs.training.evaluator import WEIGHTS_NAME, EvaluatorConfig, MiniClassifier  # noqa: E402
from lsrs.evaluation.features import Extractor, mini_extractor  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="generated images (and reference images)")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per row (median reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--evaluator-dir", type=Path, default=Path("/tmp/lsrs_eval_scratch/evaluator"),
                    help="trained mini evaluator (random weights of the same architecture if missing)")
    ap.add_argument("--data-root", type=Path, default=DEFAULT_FASHION_MNIST)
    ap.add_argument("--skip-baseline", action="store_true", help="do not time torch-fidelity")
    ap.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    a = ap.parse_args(argv)
    if a.reps < 1 or a.n < 20:
        ap.error("--reps must be >= 1 and --n >= 20")
    return a


def images(a) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(generated stand-ins, reference images, description), N each, uint8 (N, 1, 32, 32)."""
    if a.data_root.is_dir():
        gen = load_fashion_mnist(a.data_root, "test").images[:a.n]
        ref = load_fashion_mnist(a.data_root, "train").images[:a.n]
        if len(gen) == a.n:
            return gen, ref, "Fashion-MNIST test (generated) vs train (reference)"
    g = torch.Generator().manual_seed(0)
    gen, ref = (torch.randint(0, 256, (a.n, 1, 32, 32), generator=g, dtype=torch.uint8) for _ in range(2))
    return gen, ref, "synthetic uint8 noise (Fashion-MNIST not installed)"


def extractor(a, tmp: Path) -> tuple[Extractor, str]:
    if (a.evaluator_dir / WEIGHTS_NAME).is_file():
        return mini_extractor(a.evaluator_dir), f"trained evaluator in {a.evaluator_dir}"
    cfg = EvaluatorConfig()
    torch.manual_seed(0)
    atomic_save(MiniClassifier(cfg).state_dict(), tmp / WEIGHTS_NAME)
    atomic_write_text(config_to_json(cfg), tmp / "evaluator.json")
    return mini_extractor(tmp), "random-weight evaluator (same architecture and cost)"


def timed_median(fn, reps: int) -> tuple[float, list[float], object]:
    result = fn()  # warm-up (and the value we report)
    times = [C.timed(fn) for _ in range(reps)]
    return C.median(times), times, result


def main(argv=None) -> dict:
    a = parse_args(argv)
    info = C.system_info(C.setup_threads(a.threads))
    C.print_header("evaluation speed (mini profile)", info)
    gen, ref_images, data_desc = images(a)
    with tempfile.TemporaryDirectory() as tmp:
        ex, ex_desc = extractor(a, Path(tmp))
        print(f"data: {data_desc}; {len(gen)} generated, {len(ref_images)} reference images")
        print(f"extractor: {ex.name} ({ex_desc})\n")
        bs = a.batch_size
        ref = build_reference(ref_images, ex, pr_count=None, batch_size=bs)

        def ours():
            return evaluate_images(gen, ex, ref, batch_size=bs)

        def ours_with_reference():
            r = build_reference(ref_images, ex, pr_count=None, batch_size=bs)
            return evaluate_images(gen, ex, r, batch_size=bs)

        def baseline():
            import torch_fidelity

            class Images(torch.utils.data.Dataset):
                def __init__(self, x):
                    self.x = x

                def __len__(self):
                    return len(self.x)

                def __getitem__(self, i):
                    return self.x[i]

            return torch_fidelity.calculate_metrics(
                input1=Images(gen), input2=Images(ref_images), cuda=False, isc=True, fid=True, prc=True,
                save_cpu_ram=True, cache=False, verbose=False, batch_size=bs, **ex.fidelity_kwargs())

        rows, out = [], {"system": info, "data": data_desc, "extractor": ex.name, "n": a.n}
        t1, times1, r1 = timed_median(ours, a.reps)
        rows.append(["ours: evaluate_images vs precomputed reference", t1, C.spread(times1), None])
        t2, times2, _ = timed_median(ours_with_reference, a.reps)
        rows.append(["ours: reference + evaluate_images", t2, C.spread(times2), None])
        out.update(ours_s=t1, ours_times=times1, ours_with_reference_s=t2, ours_with_reference_times=times2,
                   ours_features_s=r1["seconds_features"], metrics=r1)
        if not a.skip_baseline:
            t3, times3, r3 = timed_median(baseline, a.reps)
            rows.append(["torch-fidelity calculate_metrics (isc, fid, prc)", t3, C.spread(times3), t3 / t2])
            out.update(baseline_s=t3, baseline_times=times3, ratio_baseline_over_ours=t3 / t2, baseline_metrics=r3)
        print(C.table(rows, ["what", "s (median)", "spread", "baseline / ours"]))
        print(f"\nours, {a.n} images: features {r1['seconds_features']:.2f} s, all metrics "
              f"{r1['seconds'] - r1['seconds_features']:.2f} s; FID {r1['fid']:.4f}, sFID {r1['sfid']:.4f}, "
              f"IS {r1['is']:.4f}, P {r1['precision']:.4f}, R {r1['recall']:.4f}")
        if not a.skip_baseline:
            print(f"torch-fidelity: FID {r3['frechet_inception_distance']:.4f}, IS {r3['inception_score_mean']:.4f}, "
                  f"P {r3['precision']:.4f}, R {r3['recall']:.4f}")
        verdict = "PASS" if t1 < 60 else "FAIL"
        print(f"{verdict}: {a.n} images evaluated in {t1:.1f} s (limit 60 s on 2 cores)")
    C.write_json(a.json, out)
    return out


if __name__ == "__main__":
    main()
