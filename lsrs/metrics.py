"""Sample-quality metrics from features: FID with its decomposition, sFID, IS, precision/recall, and a
paired bootstrap for FID differences.

Everything here is a pure function of feature tensors or Gaussian statistics, so one feature pass
feeds every metric (see `lsrs.features`). Conventions follow the ADM evaluator (the one VAR and LSRS
report with) and agree with torch-fidelity 0.4.0 where both define the metric:

* Gaussians are estimated in float64: mean, and `np.cov(rowvar=False)` (divisor N-1).
* FID = ||mu_r - mu_g||^2 + Tr S_r + Tr S_g - 2 Tr (S_r S_g)^{1/2}. The last trace is computed as
  sum sqrt(eig(A S_g A)) with A = S_r^{1/2} (both symmetric PSD), which equals ADM's sqrtm route and
  torch-fidelity's eigvals route mathematically but never goes complex, and lets the bootstrap reuse
  A. The paper's Table 7 names: mean_diff2 = ||mu_r - mu_g||^2, trace_term = the three trace terms.
* sFID is the same distance on the spatial features.
* IS = exp E_x KL(p(y|x) || p(y)) per split, mean over 10 splits. ADM splits the file in order,
  which collapses IS on class-ordered sample files (IS ~60 instead of ~300 for VAR), so we first
  permute with a fixed seed, exactly as torch-fidelity does (np.random.RandomState(seed)).
* Precision/recall (k=3, Kynkaanniemi et al. as in ADM): a point's radius is the distance to its
  k-th nearest neighbour in its own set (itself excluded); precision = share of generated points
  inside some real ball, recall = share of real points inside some generated ball, with `<=`.
  Distances in float32 (ADM uses fp16 on GPU, which shifts P/R by ~0.001).
"""
from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm


@dataclass(frozen=True)
class Gaussian:
    """Mean (D,) and covariance (D, D) in float64 of `count` feature vectors."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int

    def __post_init__(self):
        mu, sigma = np.asarray(self.mu, np.float64), np.asarray(self.sigma, np.float64)
        if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
            raise ValueError(f"Gaussian needs mu (D,) and sigma (D, D), got {mu.shape} and {sigma.shape}")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "sigma", sigma)

    @property
    def dim(self) -> int:
        return len(self.mu)

    @classmethod
    def of(cls, features: torch.Tensor | np.ndarray) -> "Gaussian":
        acc = GaussianAccumulator()
        acc.add(torch.as_tensor(features))
        return acc.result()


class GaussianAccumulator:
    """Streaming mean and covariance in float64, so reference sets of any size need O(D^2) memory.

    Sums are taken around a shift (the first batch's mean): with features whose mean is large next
    to their spread, the textbook sum-of-squares formula would lose digits to cancellation.
    """

    def __init__(self):
        self.count = 0
        self.shift = self.s1 = self.s2 = None

    def add(self, x: torch.Tensor) -> None:
        x = x.detach().to(torch.float64)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"expected a non-empty (B, D) batch, got {tuple(x.shape)}")
        if self.shift is None:
            self.shift = x.mean(0)
            self.s1 = torch.zeros_like(self.shift)
            self.s2 = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
        x = x - self.shift
        self.s1 += x.sum(0)
        self.s2 += x.T @ x
        self.count += len(x)

    def result(self) -> Gaussian:
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 feature vectors, got {self.count}")
        m = self.s1 / self.count
        sigma = (self.s2 - self.count * torch.outer(m, m)) / (self.count - 1)
        sigma = (sigma + sigma.T) / 2
        return Gaussian((self.shift + m).cpu().numpy(), sigma.cpu().numpy(), self.count)


# --------------------------------------------------------------------------- Frechet distance
def sqrt_psd(sigma: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a PSD matrix (eigenvalues below 0 from round-off are clipped)."""
    vals, vecs = torch.linalg.eigh(sigma)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def trace_sqrt_product(sqrt_ref: torch.Tensor, sigma_gen: torch.Tensor) -> float:
    """Tr (S_r S_g)^{1/2} = sum sqrt(eig(S_r^{1/2} S_g S_r^{1/2})) for symmetric PSD S_r, S_g."""
    m = sqrt_ref @ sigma_gen @ sqrt_ref
    return float(torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum())


def _frechet(mu_r: torch.Tensor, sqrt_r: torch.Tensor, tr_r: float, mu_g: torch.Tensor, sigma_g: torch.Tensor
             ) -> dict[str, float]:
    diff = mu_r - mu_g
    mean_diff2 = float(diff @ diff)
    tr_g = float(torch.trace(sigma_g))
    tr_sqrt_x2 = 2 * trace_sqrt_product(sqrt_r, sigma_g)
    trace_term = tr_r + tr_g - tr_sqrt_x2
    return {"fid": mean_diff2 + trace_term, "mean_diff2": mean_diff2, "trace_term": trace_term,
            "tr_sigma_ref": tr_r, "tr_sigma_gen": tr_g, "tr_sqrt_x2": tr_sqrt_x2}


def frechet_distance(ref: Gaussian, gen: Gaussian, device: str | torch.device = "cpu") -> dict[str, float]:
    """FID between two Gaussians with the paper's decomposition (appendix, Table 7).

    Keys: fid = mean_diff2 + trace_term; trace_term = tr_sigma_ref + tr_sigma_gen - tr_sqrt_x2,
    where tr_sqrt_x2 = 2 Tr (S_r S_g)^{1/2}.
    """
    if ref.dim != gen.dim:
        raise ValueError(f"feature dimensions differ: reference {ref.dim}, generated {gen.dim}")
    t = lambda a: torch.as_tensor(a, dtype=torch.float64, device=device)  # noqa: E731
    sigma_r = t(ref.sigma)
    return _frechet(t(ref.mu), sqrt_psd(sigma_r), float(torch.trace(sigma_r)), t(gen.mu), t(gen.sigma))


# --------------------------------------------------------------------------- Inception score
def inception_score(logits: torch.Tensor, splits: int = 10, shuffle: bool = True, seed: int = 2020
                    ) -> tuple[float, float]:
    """(mean, std) over `splits` of exp(mean KL(p(y|x) || p(y))) from logits, in float64.

    `shuffle` permutes the rows with np.random.RandomState(seed) first (torch-fidelity's rule), so
    the score does not depend on the order in which samples were saved.
    """
    n = len(logits)
    if n < splits:
        raise ValueError(f"IS with {splits} splits needs at least {splits} samples, got {n}")
    logits = torch.as_tensor(logits).to(torch.float64)
    if shuffle:
        logits = logits[torch.from_numpy(np.random.RandomState(seed).permutation(n))]
    log_p = logits.log_softmax(1)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits:(i + 1) * n // splits]
        log_py = part.exp().mean(0).log()
        scores.append(float((part.exp() * (part - log_py)).sum(1).mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))


# --------------------------------------------------------------------------- precision / recall
def knn_radii(x: torch.Tensor, k: int = 3, chunk: int = 2048) -> torch.Tensor:
    """Distance of every row of x to its k-th nearest other row (the (k+1)-th smallest, self included).
    topk, not kthvalue: same value, ten times faster on CPU."""
    if len(x) <= k:
        raise ValueError(f"k={k} nearest neighbours need more than {k} points, got {len(x)}")
    return torch.cat([torch.cdist(x[s:s + chunk], x).topk(k + 1, dim=1, largest=False).values[:, k]
                      for s in range(0, len(x), chunk)])


def precision_recall(real: torch.Tensor, gen: torch.Tensor, k: int = 3, device: str | torch.device = "cpu",
                     chunk: int = 2048) -> tuple[float, float]:
    """Improved precision and recall (k-NN manifolds, ADM's algorithm) in float32.

    The generated-to-real distances are computed once, in row chunks, and serve both directions:
    precision asks whether a generated row falls in some real ball, recall whether a real column
    falls in some generated ball.
    """
    if real.shape[1] != gen.shape[1]:
        raise ValueError(f"feature dimensions differ: real {real.shape[1]}, generated {gen.shape[1]}")
    real, gen = real.to(device, torch.float32), gen.to(device, torch.float32)
    radius_real, radius_gen = knn_radii(real, k, chunk), knn_radii(gen, k, chunk)
    gen_inside, real_inside = [], torch.zeros(len(real), dtype=torch.bool, device=device)
    for s in range(0, len(gen), chunk):
        d = torch.cdist(gen[s:s + chunk], real)
        gen_inside.append((d <= radius_real).any(1))
        real_inside |= (d <= radius_gen[s:s + chunk, None]).any(0)
    return float(torch.cat(gen_inside).double().mean()), float(real_inside.double().mean())


# --------------------------------------------------------------------------- paired bootstrap
def _weighted_gaussian(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance (divisor N-1) of the rows of centred x repeated w times (sum w = N)."""
    n = float(w.sum())
    m = w @ x / n
    sigma = (x.T @ (x * w[:, None]) - n * torch.outer(m, m)) / (n - 1)
    return m, (sigma + sigma.T) / 2


def _fid_low_rank(mu_r: torch.Tensor, tr_r: float, x: torch.Tensor, x_sqrt_r: torch.Tensor, w: torch.Tensor) -> float:
    """The FID of the rows of x repeated w times, through the N x N Gram matrix (for N < D).

    With Y = diag(sqrt w)(x - m), Sigma_g = Y^T Y / (N - 1), and S_r^{1/2} Sigma_g S_r^{1/2} = B^T B
    for B = Y S_r^{1/2} / sqrt(N - 1): its non-zero eigenvalues are those of B B^T (N x N).
    `x_sqrt_r` is x @ S_r^{1/2}, computed once per run.
    """
    n = float(w.sum())
    m = w @ x / n
    sw = w.sqrt()[:, None]
    y = (x - m) * sw
    b = (x_sqrt_r - (w @ x_sqrt_r) / n) * sw / math.sqrt(n - 1)
    gram = b @ b.T
    tr_sqrt = float(torch.linalg.eigvalsh((gram + gram.T) / 2).clamp(min=0).sqrt().sum())
    diff = mu_r - m
    return float(diff @ diff) + tr_r + float((y * y).sum()) / (n - 1) - 2 * tr_sqrt


def paired_bootstrap_fid(baseline: torch.Tensor, candidate: torch.Tensor, ref: Gaussian, n_boot: int = 200,
                         seed: int = 0, confidence: float = 0.95, device: str | torch.device = "cpu") -> dict:
    """Bootstrap interval for FID(candidate) - FID(baseline) when image i of both runs shares its seed.

    Both runs are resampled with the same image indices, so noise that the pairing shares (the
    class and seed of image i) cancels and the interval is much tighter than two independent ones.
    The reference statistics are held fixed (they are common to every run). Bootstrap FIDs are
    biased upwards (repeated images shrink the effective sample), but nearly equally for both runs.

    Returns the full-sample FIDs, their difference `delta` (negative: the candidate is better), the
    percentile interval [`low`, `high`], the bootstrap standard error and `share_not_better`, the
    fraction of replicates with delta >= 0.
    """
    if baseline.shape != candidate.shape:
        raise ValueError(f"paired runs need the same shape, got {tuple(baseline.shape)} and {tuple(candidate.shape)}")
    if not 0 < confidence < 1 or n_boot < 1:
        raise ValueError("confidence must be in (0, 1) and n_boot >= 1")
    t = lambda a: torch.as_tensor(a, dtype=torch.float64, device=device)  # noqa: E731
    mu_r, sigma_r = t(ref.mu), t(ref.sigma)
    sqrt_r, tr_r = sqrt_psd(sigma_r), float(torch.trace(sigma_r))
    runs = []
    for x in (baseline, candidate):  # centre once; the Frechet distance is shift-invariant if mu_r shifts too
        x = t(x)
        centre = x.mean(0)
        runs.append((x - centre, mu_r - centre))
    n, dim = baseline.shape
    low_rank = n < dim  # few images of wide features: work with the n x n Gram matrix instead of D x D
    projected = [xc @ sqrt_r for xc, _ in runs] if low_rank else None

    def fid_pair(w: torch.Tensor) -> tuple[float, float]:
        out = []
        for i, (xc, mu_rc) in enumerate(runs):
            if low_rank:
                out.append(_fid_low_rank(mu_rc, tr_r, xc, projected[i], w))
            else:
                m, s = _weighted_gaussian(xc, w)
                out.append(_frechet(mu_rc, sqrt_r, tr_r, m, s)["fid"])
        return out[0], out[1]

    fid_a, fid_b = fid_pair(torch.ones(n, dtype=torch.float64, device=device))
    g = torch.Generator().manual_seed(seed)
    deltas = []
    for _ in tqdm(range(n_boot), desc="paired bootstrap", unit="rep", leave=False):
        w = torch.bincount(torch.randint(n, (n,), generator=g), minlength=n).to(device, torch.float64)
        a, b = fid_pair(w)
        deltas.append(b - a)
    deltas = np.asarray(deltas)
    alpha = (1 - confidence) / 2
    return {"fid_baseline": fid_a, "fid_candidate": fid_b, "delta": fid_b - fid_a,
            "low": float(np.quantile(deltas, alpha)), "high": float(np.quantile(deltas, 1 - alpha)),
            "se": float(deltas.std(ddof=1)) if n_boot > 1 else float("nan"),
            "share_not_better": float((deltas >= 0).mean()), "n_boot": n_boot, "confidence": confidence,
            "count": n}
