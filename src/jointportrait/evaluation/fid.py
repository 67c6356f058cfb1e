"""Frechet distance between Gaussian fits of features: FID (Table 2) and FVD (Table 3).

For features ``f1`` (N1, D) and ``f2`` (N2, D) with means ``mu_i`` and
covariances ``S_i`` (unbiased, ``ddof = 1``, as pytorch-fid)::

    d^2 = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})

``Tr((S_1 S_2)^{1/2})`` is computed as the sum of square roots of the
eigenvalues of the symmetric PSD matrix ``S_1^{1/2} S_2 S_1^{1/2}`` (which has
the same eigenvalues as ``S_1 S_2``), so no non-symmetric matrix square root
is needed. FID uses InceptionV3 pool3 features (2048-d,
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
    """Frechet distance between the Gaussian fits of two feature sets ``(N1, D)``, ``(N2, D)``."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))
