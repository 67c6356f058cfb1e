"""Frechet distance (FID / FVD) on 2048-d features: our two routes against pytorch-fid's ``scipy.linalg.sqrtm``.

pytorch-fid computes ``Tr((S1 S2)^{1/2})`` with ``scipy.linalg.sqrtm`` of the
non-symmetric 2048x2048 product. ``frechet_distance`` uses the eigenvalues of
the symmetric ``S1^{1/2} S2 S1^{1/2}``; ``frechet_distance_from_features``
with fewer samples than dimensions uses the singular values of ``X1 X2^T``
(N1 x N2). Measured: time ratio (baseline / ours) and the relative difference
of the values, for N = 500 and N = 1264 samples per set (1264 = the paper's
depth/image test set). Timings are single runs on a shared machine: read the
ratios, not the seconds.

Run: ``python benchmarks/bench_fid.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.linalg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.report import timeit, update_section
from jointportrait.evaluation.fid import feature_statistics, frechet_distance, frechet_distance_from_features

DIM = 2048


def pytorch_fid_reference(f1: np.ndarray, f2: np.ndarray) -> float:
    """pytorch-fid's ``calculate_frechet_distance`` (statistics + scipy sqrtm), the baseline."""
    mu1, s1 = f1.mean(0), np.cov(f1, rowvar=False)
    mu2, s2 = f2.mean(0), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def main() -> None:
    rng = np.random.default_rng(0)
    mixing = rng.normal(0, 1, (DIM, DIM)) / np.sqrt(DIM)
    lines = ["| samples per set | sqrtm (pytorch-fid) s | eigen route s | ratio | singular-value route s | ratio "
             "| max rel. difference |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for n in (500, 1264):
        f1 = np.maximum(rng.normal(0, 1, (n, DIM)) @ mixing, 0)  # ReLU-like, correlated, as pool3 features
        f2 = np.maximum(rng.normal(0.1, 1.1, (n, DIM)) @ mixing, 0)
        ref = pytorch_fid_reference(f1, f2)
        t_ref = timeit(lambda f1=f1, f2=f2: pytorch_fid_reference(f1, f2), repeats=1, warmup=0)
        t_eig = timeit(lambda f1=f1, f2=f2: frechet_distance(*feature_statistics(f1), *feature_statistics(f2)),
                       repeats=1, warmup=0)
        t_fast = timeit(lambda f1=f1, f2=f2: frechet_distance_from_features(f1, f2), repeats=1, warmup=0)
        eig = frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
        fast = frechet_distance_from_features(f1, f2)
        diff = max(abs(eig - ref), abs(fast - ref)) / abs(ref)
        lines.append(f"| {n} | {t_ref:.2f} | {t_eig:.2f} | {t_ref / t_eig:.1f}x | {t_fast:.2f} "
                     f"| {t_ref / t_fast:.1f}x | {diff:.1e} |")
        print(lines[-1], flush=True)
    update_section("fid", "## Frechet distance (FID/FVD), 2048-d features\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
