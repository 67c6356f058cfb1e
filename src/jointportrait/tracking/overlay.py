"""Overlay of the fitted mesh on the frames, for checking a track by eye (paper Sec. 5.1).

The fitted mesh is drawn as grey Lambertian shading (light at the camera)
blended over the frame, with the given landmarks in green and the fitted
model's landmarks in red.
"""

from __future__ import annotations

import cv2
import numpy as np

MESH_ALPHA = 0.6


def overlay_frames(frames: np.ndarray, mask: np.ndarray, normals: np.ndarray, landmarks: np.ndarray,
                   fitted_landmarks: np.ndarray) -> np.ndarray:
    """Frames ``(F, H, W, 3)`` uint8 with the mesh (mask ``(F, H, W)``, normals ``(F, H, W, 3)``) and
    landmarks ``(F, 68, 2)`` drawn on them -> ``(F, H, W, 3)`` uint8."""
    shade = np.clip(-normals[..., 2], 0.0, 1.0) * 0.85 + 0.15  # (F, H, W); normals face the camera at n_z = -1
    grey = np.repeat((shade * 255.0)[..., None], 3, axis=-1)
    alpha = MESH_ALPHA * mask[..., None]
    out = (frames * (1.0 - alpha) + grey * alpha + 0.5).astype(np.uint8)
    radius = max(1, round(max(frames.shape[1:3]) / 200))
    for f in range(out.shape[0]):
        canvas = np.ascontiguousarray(out[f])
        for points, colour in ((landmarks[f], (0, 255, 0)), (fitted_landmarks[f], (255, 0, 0))):
            for x, y in points:
                if np.isfinite(x) and np.isfinite(y):
                    cv2.circle(canvas, (int(round(x)), int(round(y))), radius, colour, -1, lineType=cv2.LINE_AA)
        out[f] = canvas
    return out
