"""Aligning a face to a template by its landmarks (paper Sec. 5.5: identity features are computed on aligned
faces).

:func:`similarity_transform` is Umeyama's closed-form least-squares
similarity (rotation, uniform scale, translation; Umeyama, PAMI 1991)
mapping points ``src`` onto ``dst``: with the centred point sets ``X``, ``Y``
and the SVD ``Y^T X / n = U S V^T``,

    R = U diag(1, det(U V^T)) V^T,   s = trace(diag(S) diag(1, det)) / var(X),   t = mean(Y) - s R mean(X).

ArcFace-style recognisers expect a 112 x 112 crop where five points (eye
centres, nose tip, mouth corners) sit on a fixed template
(:data:`ARCFACE_TEMPLATE`, the one published with insightface's models);
:func:`align_to_template` warps a face there from its 68 landmarks.
"""

from __future__ import annotations

import cv2
import numpy as np

from jointportrait.faces.layout import MOUTH_LEFT, MOUTH_RIGHT, NOSE_TIP, eye_centres

# image-left eye, image-right eye, nose tip, image-left and image-right mouth corner, in a 112 x 112 crop
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                             [70.7299, 92.2041]])
ARCFACE_SIZE = 112


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """The five template points ``(5, 2)`` of 68 landmarks: eye centres, nose tip, mouth corners."""
    lmk = np.asarray(landmarks, dtype=np.float64)
    right, left = eye_centres(lmk)  # the subject's right eye is on the image's left
    return np.stack([right, left, lmk[NOSE_TIP], lmk[MOUTH_RIGHT], lmk[MOUTH_LEFT]])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` similarity ``[sR | t]`` that maps points ``src`` ``(N, 2)`` onto ``dst`` best in the
    least-squares sense (Umeyama; reflections excluded)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)  # (2, 2)
    u, sig, vt = np.linalg.svd(cov)
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sig) @ d) / max(xs.var(0).sum(), 1e-12))
    return np.concatenate([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]], axis=1)


def align_to_template(image: np.ndarray, landmarks: np.ndarray, size: int = ARCFACE_SIZE) -> np.ndarray:
    """The ``(size, size, 3)`` crop of ``image`` with the face's five points on the ArcFace template
    (scaled from 112 px to ``size``)."""
    matrix = similarity_transform(five_points(landmarks), ARCFACE_TEMPLATE * (size / ARCFACE_SIZE))
    return cv2.warpAffine(np.asarray(image), matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
