"""Do the mini metrics mean something? Real held-out images against degraded and collapsed ones.

    .venv/bin/python benchmarks/sanity_metrics.py [--evaluator-dir DIR] [--threads N] [--json out.json]

Trains the mini evaluator into --evaluator-dir if it is not there yet (about 2 minutes on one core),
builds the reference from all 60,000 Fashion-MNIST training images, and scores image sets made from
the 10,000 held-out test images:

* the test images themselves (FID should be near 0, IS near the classifier's ceiling),
* the test images blurred (3x3 box) or with Gaussian pixel noise (sigma 40),
* a class-collapsed set (only 3 of the 10 classes, 3,000 images) next to 3,000 random test images,
  so that the count is the same,
* paired bootstrap intervals for FID differences between runs that share their image indices,
  including a null pair (two draws of the same slight pixel noise) whose interval must contain 0.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from lsrs.data.fashion_mnist import DEFAULT_FASHION_MNIST, load_fashion_mnist  # noqa: E402
from lsrs.evaluation.reference import build_reference, compare_runs, evaluate_features  # noqa: E402
from lsrs.training.evaluator import EvaluatorTrainConfig, WEIGHTS_NAME, train_evaluator  # noqa: E402
from lsrs.evaluation.features import cached_features, mini_extractor  # noqa: E402

COLUMNS = ["set", "n", "FID", "mean_diff2", "trace_term", "sFID", "IS", "precision", "recall"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaluator-dir", type=Path, default=Path("/tmp/lsrs_eval_scratch/evaluator"),
                    help="folder with evaluator.pth/.json (trained there if missing; default %(default)s)")
    ap.add_argument("--data-root", type=Path, default=DEFAULT_FASHION_MNIST)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates of the paired intervals")
    ap.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    return ap.parse_args(argv)


def degraded_sets(test) -> dict[str, torch.Tensor]:
    """Named uint8 image sets derived from the test split (same order: image i is paired across sets)."""
    x = test.images
    g = torch.Generator().manual_seed(0)
    blur = torch.nn.functional.avg_pool2d(x.float(), 3, 1, 1).round().to(torch.uint8)
    noise = (x.float() + 40 * torch.randn(x.shape, generator=g)).clamp(0, 255).round().to(torch.uint8)
    three = x[(test.labels < 3).nonzero().flatten()]
    random3k = x[torch.randperm(len(x), generator=g)[:len(three)]]
    return {"test (held-out real)": x, "test, 3x3 blur": blur, "test, noise sigma 40": noise,
            f"random {len(three)} test": random3k, f"3 classes only ({len(three)})": three}


def main(argv=None) -> dict:
    a = parse_args(argv)
    info = C.system_info(C.setup_threads(a.threads))
    C.print_header("mini metrics sanity check", info)
    train, test = load_fashion_mnist(a.data_root, "train"), load_fashion_mnist(a.data_root, "test")
    if not (a.evaluator_dir / WEIGHTS_NAME).is_file():
        print(f"training the evaluator into {a.evaluator_dir}")
        train_evaluator(train, test, EvaluatorTrainConfig(), a.evaluator_dir)
    metrics_file = a.evaluator_dir / "evaluator_metrics.json"
    ex = mini_extractor(a.evaluator_dir)
    accuracy = json.loads(metrics_file.read_text())["test_accuracy"] if metrics_file.is_file() else None
    print(f"evaluator {ex.name}: test accuracy {accuracy}")

    t = time.perf_counter()
    ref = build_reference(train.images, ex, pr_count=10_000, batch_size=1000, source="Fashion-MNIST train")
    print(f"reference: {ref.count} training images ({len(ref.pr_features)} for P/R) "
          f"in {time.perf_counter() - t:.1f} s\n")

    rows, results, feats = [], {}, {}
    for name, images in degraded_sets(test).items():
        feats[name], _ = cached_features(images, ex, batch_size=1000)
        r = evaluate_features(feats[name], ref)
        results[name] = r
        rows.append([name, r["count"], r["fid"], r["fid_mean_diff2"], r["fid_trace_term"], r["sfid"], r["is"],
                     r["precision"], r["recall"]])
    print(C.table(rows, COLUMNS))

    print(f"\npaired bootstrap ({a.n_boot} replicates, 95%): FID(candidate) - FID(baseline), same image indices")
    for seed in (1, 2):  # two runs of the same slightly noisy "generator": the null case
        noisy = test.images.float() + 3 * torch.randn(test.images.shape, generator=torch.Generator().manual_seed(seed))
        feats[f"test, noise sigma 3 (seed {seed})"], _ = cached_features(noisy.clamp(0, 255).round().to(torch.uint8),
                                                                         ex, batch_size=1000)
    pairs = [("test (held-out real)", "test, noise sigma 3 (seed 1)"),
             ("test, noise sigma 3 (seed 1)", "test, noise sigma 3 (seed 2)"),
             ("test (held-out real)", "test, 3x3 blur"), ("test (held-out real)", "test, noise sigma 40")]
    paired, brows = {}, []
    for base, cand in pairs:
        b = compare_runs(feats[base], feats[cand], ref, n_boot=a.n_boot)
        paired[f"{cand} vs {base}"] = b
        brows.append([base, cand, b["fid_baseline"], b["fid_candidate"], b["delta"], b["low"], b["high"],
                      b["share_not_better"]])
    print(C.table(brows, ["baseline", "candidate", "FID base", "FID cand", "delta", "low", "high",
                          "share delta>=0"]))
    out = {"system": info, "evaluator": ex.name, "test_accuracy": accuracy, "metrics": results, "paired": paired}
    C.write_json(a.json, out)
    return out


if __name__ == "__main__":
    main()
