"""The 68-point face landmark layout (Multi-PIE / iBUG 300-W order), its mirror symmetry and face scale.

Index ranges (end exclusive): jaw 0-17, right brow 17-22, left brow 22-27,
nose bridge 27-31, nose base 31-36, right eye 36-42, left eye 42-48, outer
mouth 48-60, inner mouth 60-68 ("right" = the subject's right, on the left of
the image for a frontal face). Points are pixels: x right, y down, pixel
centres on integers.
"""

from __future__ import annotations

import numpy as np

NUM_LANDMARKS = 68
JAW = slice(0, 17)
RIGHT_BROW, LEFT_BROW = slice(17, 22), slice(22, 27)
NOSE_BRIDGE, NOSE_BASE = slice(27, 31), slice(31, 36)
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)
OUTER_MOUTH, INNER_MOUTH = slice(48, 60), slice(60, 68)
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 36, 45
NOSE_TIP, MOUTH_RIGHT, MOUTH_LEFT = 30, 48, 54


def _flip_permutation() -> np.ndarray:
    """Index ``i`` of a mirrored face is point ``FLIP_PERMUTATION[i]`` of the original."""
    pairs = [(j, 16 - j) for j in range(17)]  # jaw
    pairs += [(17 + j, 26 - j) for j in range(5)]  # brows
    pairs += [(j, j) for j in range(27, 31)]  # nose bridge lies on the symmetry axis
    pairs += [(31 + j, 35 - j) for j in range(5)]  # nose base
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48 + j, 54 - j) for j in range(7)]  # upper outer lip, 48..54
    pairs += [(55, 59), (56, 58), (57, 57), (59, 55), (58, 56)]  # lower outer lip
    pairs += [(60, 64), (61, 63), (62, 62), (63, 61), (64, 60), (65, 67), (66, 66), (67, 65)]  # inner lip
    perm = np.full(NUM_LANDMARKS, -1)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    assert sorted(perm) == list(range(NUM_LANDMARKS))
    return perm


FLIP_PERMUTATION = _flip_permutation()


def mirror_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Landmarks ``(..., 68, 2)`` of an image of ``width`` pixels as seen in its horizontal mirror image:
    ``x' = width - 1 - x`` and the left/right points swapped (:data:`FLIP_PERMUTATION`)."""
    out = np.asarray(landmarks, dtype=np.float64)[..., FLIP_PERMUTATION, :].copy()
    out[..., 0] = width - 1 - out[..., 0]
    return out


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(..., 2)`` of the subject's right and left eye (means of their six points)."""
    lmk = np.asarray(landmarks, dtype=np.float64)
    return lmk[..., RIGHT_EYE, :].mean(-2), lmk[..., LEFT_EYE, :].mean(-2)


def interocular_distance(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres ``(...,)`` of landmarks ``(..., 68, 2)``: the face's scale in pixels."""
    right, left = eye_centres(landmarks)
    return np.linalg.norm(right - left, axis=-1)


def outer_eye_distance(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners (points 36 and 45), the 300-W benchmark's normaliser."""
    lmk = np.asarray(landmarks, dtype=np.float64)
    return np.linalg.norm(lmk[..., RIGHT_EYE_OUTER, :] - lmk[..., LEFT_EYE_OUTER, :], axis=-1)


def normalised_error(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean point-to-point error ``(...,)`` over the 68 points divided by the target's outer-eye distance
    (the normalised mean error of the 300-W benchmark)."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    return np.linalg.norm(pred - target, axis=-1).mean(-1) / np.maximum(outer_eye_distance(target), 1e-9)
