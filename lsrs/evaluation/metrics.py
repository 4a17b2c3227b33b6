"""Sample-quality metrics from features: FID with its decomposition, sFID, IS, precision/recall, and a
paired bootstrap for FID differences.

Everything here is a pure function of feature tensors or Gaussian statistics, so one feature pass
feeds every metric (see `lsrs.evaluation.features`). Conventions follow the ADM evaluator (the one VAR and LSRS
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


def frechet_from_parts(mu_r: torch.Tensor, sqrt_r: torch.Tensor, tr_r: float, mu_g: torch.Tensor, sigma_g: torch.Tensor
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
    return frechet_from_parts(t(ref.mu), sqrt_psd(sigma_r), float(torch.trace(sigma_r)), t(gen.mu), t(gen.sigma))


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
def weighted_gaussian(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance (divisor N-1) of the rows of centred x repeated w times (sum w = N)."""
    n = float(w.sum())
    m = w @ x / n
    sigma = (x.T @ (x * w[:, None]) - n * torch.outer(m, m)) / (n - 1)
    return m, (sigma + sigma.T) / 2


def fid_low_rank(mu_r: torch.Tensor, tr_r: float, x: torch.Tensor, x_sqrt_r: torch.Tensor, w: torch.Tensor) -> float:
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


def _batched_fids(xc: torch.Tensor, mu_rc: torch.Tensor, sqrt_r: torch.Tensor, tr_r: float, W: torch.Tensor,
                  chunk: int = 128) -> torch.Tensor:
    """FIDs (B,) of the rows of centred xc (N, D) repeated W[b] times (W: (B, N) counts), all at once.

    The second moments of every draw are one matmul W @ Z with Z the N x D(D+1)/2 upper triangles
    of x_i x_i^T, which is several times faster on a CPU than B separate weighted covariances; the
    eigenvalues run batched. Same formulas as `frechet_from_parts` (divisor n - 1), in the dtype of xc.
    """
    n_img, dim = xc.shape
    iu = torch.triu_indices(dim, dim, device=xc.device)
    out = []
    for b0 in range(0, len(W), chunk):
        w = W[b0:b0 + chunk]
        n = w.sum(1)
        m = (w @ xc) / n[:, None]
        tri = torch.zeros(len(w), iu.shape[1], dtype=xc.dtype, device=xc.device)
        for i0 in range(0, n_img, 2048):
            x = xc[i0:i0 + 2048]
            tri += w[:, i0:i0 + 2048] @ (x[:, iu[0]] * x[:, iu[1]])
        second = torch.zeros(len(w), dim, dim, dtype=xc.dtype, device=xc.device)
        second[:, iu[0], iu[1]] = tri
        second = second + second.transpose(1, 2) - torch.diag_embed(torch.diagonal(second, dim1=1, dim2=2))
        sigma = (second - n[:, None, None] * m[:, :, None] * m[:, None, :]) / (n[:, None, None] - 1)
        prod = sqrt_r @ sigma @ sqrt_r
        tr_sqrt = torch.linalg.eigvalsh((prod + prod.transpose(1, 2)) / 2).clamp(min=0).sqrt().sum(1)
        diff = mu_rc[None] - m
        out.append((diff * diff).sum(1) + tr_r + torch.diagonal(sigma, dim1=1, dim2=2).sum(1) - 2 * tr_sqrt)
    return torch.cat(out) if out else torch.zeros(0, dtype=xc.dtype)


class _PairedFID:
    """FIDs of two paired runs (baseline, candidate) under per-image weights, for many draws at once."""

    def __init__(self, baseline: torch.Tensor, candidate: torch.Tensor, ref: Gaussian, device):
        t = lambda a: torch.as_tensor(a, dtype=torch.float64, device=device)  # noqa: E731
        mu_r, sigma_r = t(ref.mu), t(ref.sigma)
        self.sqrt_r, self.tr_r = sqrt_psd(sigma_r), float(torch.trace(sigma_r))
        self.runs = []
        for x in (baseline, candidate):  # centre once; the Frechet distance is shift-invariant if mu_r shifts too
            x = t(x)
            centre = x.mean(0)
            self.runs.append((x - centre, mu_r - centre))
        n, dim = baseline.shape
        self.device = device
        self.low_rank = n < dim  # few images of wide features: the n x n Gram matrix instead of D x D
        self.batched = not self.low_rank and dim <= 256  # small features: every draw in one matmul
        self.projected = [xc @ self.sqrt_r for xc, _ in self.runs] if self.low_rank else None
        # bootstrap draws in float32 (3x faster on a CPU; ~1e-4 FID off, far below the endpoints' Monte-Carlo
        # error); the full-sample FIDs, weights all ones, stay float64
        self.runs32 = [(xc.float(), mu.float()) for xc, mu in self.runs]
        self.sqrt_r32 = self.sqrt_r.float()

    def __call__(self, W: torch.Tensor, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """FIDs (baseline, candidate), each (B,), for the draws W (B, N) of image counts (`exact`: float64)."""
        W = W.to(self.device, torch.float64)
        if self.batched:
            runs, sqrt_r = (self.runs, self.sqrt_r) if exact else (self.runs32, self.sqrt_r32)
            return tuple(_batched_fids(xc, mu, sqrt_r, self.tr_r, W.to(xc.dtype)).double().cpu().numpy()
                         for xc, mu in runs)
        out = np.zeros((2, len(W)))
        for b, w in enumerate(W):
            for i, (xc, mu_rc) in enumerate(self.runs):
                if self.low_rank:
                    out[i, b] = fid_low_rank(mu_rc, self.tr_r, xc, self.projected[i], w)
                else:
                    m, s = weighted_gaussian(xc, w)
                    out[i, b] = frechet_from_parts(mu_rc, self.sqrt_r, self.tr_r, m, s)["fid"]
        return out[0], out[1]


def _draws(groups: list[np.ndarray], n: int, n_boot: int, rng: np.random.Generator) -> torch.Tensor:
    """Image counts (n_boot, n): per draw, each group's images resampled with replacement within it."""
    rows = np.arange(n_boot)[:, None] * n
    picked = np.concatenate([(rows + idx[rng.integers(len(idx), size=(n_boot, len(idx)))]).ravel() for idx in groups])
    return torch.from_numpy(np.bincount(picked, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64))


def endpoint_mcse(draws: np.ndarray, q: float) -> float:
    """Monte-Carlo standard error of the q-quantile of bootstrap draws: sqrt(q(1-q)/B) / f(x_q), with the
    density f at the quantile from a normal fitted to the draws (how far the endpoint moves with other draws)."""
    sd = float(np.std(draws, ddof=1))
    if len(draws) < 2 or sd == 0:
        return 0.0
    z = float(np.quantile((draws - draws.mean()) / sd, q))
    density = math.exp(-z * z / 2) / math.sqrt(2 * math.pi) / sd
    return math.sqrt(q * (1 - q) / len(draws)) / max(density, 1e-12)


def paired_bootstrap_fid(baseline: torch.Tensor, candidate: torch.Tensor, ref: Gaussian, n_boot: int = 2000,
                         seed: int = 0, confidence: float = 0.95, device: str | torch.device = "cpu",
                         groups: torch.Tensor | np.ndarray | None = None, n_boot_components: int = 200,
                         mcse_target: float | None = None, n_boot_max: int | None = None) -> dict:
    """Bootstrap interval for FID(candidate) - FID(baseline) when image i of both runs shares its seed.

    Both runs are resampled with the same image indices, so noise that the pairing shares (the
    class and seed of image i) cancels and the interval is much tighter than two independent ones.
    The reference statistics are held fixed (they are common to every run). Bootstrap FIDs are
    biased upwards (repeated images shrink the effective sample), but nearly equally for both runs.

    `groups` (N,) gives each candidate image its scorer replicate (0..R-1; image i was made with
    replicate groups[i], the replicates' image sets are disjoint). Then every draw resamples the
    images within each replicate (image sampling) and adds a normal replicate term N(0, tau2 / R)
    (scorer training; tau2 the DerSimonian-Laird between-replicate variance, `variance_components`):
    the interval covers both sources, and it follows the variance model Var = a/N + tau2/R. (A plain
    two-level bootstrap, replicates then images, counts the image noise twice: its variance is about
    (R-1)/R (tau2/R + a/N) + a/N, up to twice too large when tau2 is small.) Without groups it is the
    classic one-level paired bootstrap.

    `n_boot` draws at least; with `mcse_target`, 1000 more at a time until the Monte-Carlo error of
    both endpoints is below it (at most `n_boot_max` draws).

    Returns the full-sample FIDs, their difference `delta` (negative: the candidate is better), the
    percentile interval [`low`, `high`] with the Monte-Carlo error of its endpoints (`endpoint_mcse`),
    the bootstrap standard error, `share_not_better` (the fraction of draws with delta >= 0), and
    with groups the variance components.
    """
    if baseline.shape != candidate.shape:
        raise ValueError(f"paired runs need the same shape, got {tuple(baseline.shape)} and {tuple(candidate.shape)}")
    if not 0 < confidence < 1 or n_boot < 2:
        raise ValueError("confidence must be in (0, 1) and n_boot >= 2")
    n = baseline.shape[0]
    groups = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    if groups.shape != (n,):
        raise ValueError(f"groups must have one entry per image ({n}), got shape {groups.shape}")
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    fid = _PairedFID(baseline, candidate, ref, device)
    fid_a, fid_b = (float(v[0]) for v in fid(torch.ones(1, n, dtype=torch.float64), exact=True))
    rng = np.random.default_rng(seed)
    replicated = len(members) > 1
    components = variance_components(fid, members, n, n_boot_components, rng) if replicated else {}
    between_sd = math.sqrt(components.get("tau2", 0.0) / len(members))
    alpha = (1 - confidence) / 2
    deltas = np.zeros(0)
    bar = tqdm(total=n_boot, desc="paired bootstrap", unit="draw", leave=False)
    while len(deltas) < n_boot or (mcse_target and len(deltas) < (n_boot_max or n_boot) and max(
            endpoint_mcse(deltas, alpha), endpoint_mcse(deltas, 1 - alpha)) > mcse_target):
        more = 1000 if len(deltas) >= n_boot else n_boot - len(deltas)
        W = _draws(members, n, more, rng)
        for b0 in range(0, more, 250):
            a, b = fid(W[b0:b0 + 250])
            deltas = np.concatenate([deltas, b - a])
        bar.total = max(bar.total, len(deltas))
        bar.update(more)
    bar.close()
    images_only = deltas
    if replicated:
        deltas = deltas + rng.normal(0.0, between_sd, size=len(deltas)) if between_sd > 0 else deltas
        components["var_images"] = float(np.var(images_only, ddof=1))
        components["se_model"] = math.sqrt(components["var_images"] + between_sd ** 2)
    n_boot = len(deltas)
    out = {"fid_baseline": fid_a, "fid_candidate": fid_b, "delta": fid_b - fid_a,
           "low": float(np.quantile(deltas, alpha)), "high": float(np.quantile(deltas, 1 - alpha)),
           "se": float(deltas.std(ddof=1)), "share_not_better": float((deltas >= 0).mean()),
           "endpoint_mcse": max(endpoint_mcse(deltas, alpha), endpoint_mcse(deltas, 1 - alpha)),
           "n_boot": n_boot, "method": ("percentile: images within replicates + replicate term" if replicated
                                        else "percentile"),
           "confidence": confidence, "count": n, "replicates": len(members), **components}
    return out


def variance_components(fid: _PairedFID, members: list[np.ndarray], n: int, n_boot: int,
                        rng: np.random.Generator) -> dict:
    """How much of the pooled delta's variance comes from images and how much from scorer training.

    * `replicate_deltas`: delta of each replicate on its own images (and the paired plain images);
    * `replicate_var`: each one's variance over its own image resamples (`n_boot` draws);
    * `tau2`: between-replicate variance of one replicate's delta, the DerSimonian-Laird estimate
      max(0, s^2 - mean v_r) with v_r each replicate's own image variance (the replicates' images are
      disjoint, hence independent).
    `paired_bootstrap_fid` adds `var_images` (the pooled delta's variance over image resamples with
    the replicates fixed, about a / N) and `se_model` = sqrt(var_images + tau2 / R).
    """
    W = _draws(members, n, n_boot, rng)
    rep, v = [], []
    for idx in members:
        mask = torch.zeros(n, dtype=torch.float64)
        mask[idx] = 1.0
        pa, pb = fid(mask[None], exact=True)
        rep.append(float(pb[0] - pa[0]))
        wa, wb = fid(W * mask)  # the draws restricted to this replicate's images
        v.append(float(np.var(wb - wa, ddof=1)))
    tau2 = max(0.0, float(np.var(rep, ddof=1)) - float(np.mean(v)))
    return {"replicate_deltas": rep, "replicate_var": v, "tau2": tau2}
