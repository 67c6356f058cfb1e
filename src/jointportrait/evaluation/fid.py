"""Frechet distance between Gaussian fits of features: FID (Table 2) and FVD (Table 3).

For features ``f1`` (N1, D) and ``f2`` (N2, D) with means ``mu_i`` and
covariances ``S_i`` (unbiased, ``ddof = 1``, as pytorch-fid)::

    d^2 = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})

``Tr((S_1 S_2)^{1/2})`` is computed as the sum of square roots of the
eigenvalues of the symmetric PSD matrix ``S_1^{1/2} S_2 S_1^{1/2}`` (which has
the same eigenvalues as ``S_1 S_2``), so no non-symmetric matrix square root
is needed. With fewer samples than dimensions (the usual case: a few hundred
images, 2048-d features) the same trace comes exactly and much faster from the
centred feature matrices ``X_i`` (N_i, D): ``S_i = X_i^T X_i / (N_i - 1)``, the
nonzero eigenvalues of ``S_1 S_2`` are those of ``(X_1 X_2^T)(X_1 X_2^T)^T / c``
with ``c = (N_1 - 1)(N_2 - 1)``, so ``Tr((S_1 S_2)^{1/2}) = sum_i sigma_i(X_1 X_2^T) / sqrt(c)``
(singular values of an N_1 x N_2 matrix). FID uses InceptionV3 pool3 features (2048-d,
:mod:`~jointportrait.evaluation.inception`); FVD uses I3D features
(:mod:`~jointportrait.evaluation.i3d`). The formula holds for any feature
extractor, but only those published backbones with their published weights
give numbers comparable to papers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jointportrait.evaluation._arrays import as_array


def feature_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``features`` ``(N, D)``, N >= 2."""
    f = as_array(features, "features")
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features (N, D) with N >= 2 samples, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False, ddof=1).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Frechet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (module docstring)."""
    mu1, mu2 = as_array(mu1, "mu1").ravel(), as_array(mu2, "mu2").ravel()
    s1, s2 = np.atleast_2d(as_array(sigma1, "sigma1")), np.atleast_2d(as_array(sigma2, "sigma2"))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: means {mu1.shape}, {mu2.shape}; covariances {s1.shape}, {s2.shape}")
    r1 = _psd_sqrt(s1)
    m = r1 @ s2 @ r1
    eig = np.linalg.eigvalsh((m + m.T) / 2.0)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def frechet_distance_from_features(features1: Any, features2: Any) -> float:
    """Frechet distance between the Gaussian fits of two feature sets ``(N1, D)``, ``(N2, D)``.

    Uses the singular values of ``X_1 X_2^T`` when ``min(N1, N2) < D`` (module docstring).
    """
    f1, f2 = as_array(features1, "features1"), as_array(features2, "features2")
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1] or min(f1.shape[0], f2.shape[0]) < 2:
        raise ValueError(f"need two feature sets (N, D) of one D with N >= 2, got {f1.shape} and {f2.shape}")
    (n1, d), n2 = f1.shape, f2.shape[0]
    if min(n1, n2) >= d:
        return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    x1, x2 = f1 - mu1, f2 - mu2  # (N1, D), (N2, D)
    tr_covmean = float(np.linalg.svd(x1 @ x2.T, compute_uv=False).sum()) / np.sqrt((n1 - 1) * (n2 - 1))
    tr1, tr2 = float(np.sum(x1 * x1)) / (n1 - 1), float(np.sum(x2 * x2)) / (n2 - 1)
    diff = mu1 - mu2
    return float(diff @ diff + tr1 + tr2 - 2.0 * tr_covmean)
