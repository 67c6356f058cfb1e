"""Face detection, 68-point landmarks and the face descriptor (the ``faces`` extra) on the astronaut photo.

Speed: HOG detection at 512 px (no upsampling, and one 2x upsampling), the
CNN detector, the 68-point predictor per face and the 128-d descriptor per
face, each the median of several runs in one process; ratios are against HOG
detection at 512 px measured in the same run. Accuracy: mean error over 21
hand-labelled points (tests/faces/astronaut_hand_landmarks.json) divided by
the outer-eye-corner distance (the 300-W normalisation), for each detector's
box.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from benchmarks.report import timeit, update_section
from jointportrait.faces import FaceDescriptor, FaceDetector

LABELS = Path(__file__).resolve().parent.parent / "tests" / "faces" / "astronaut_hand_landmarks.json"


def main() -> None:
    from skimage import data

    image = data.astronaut()
    points = json.loads(LABELS.read_text())["points"]
    idx = np.array([int(k) for k in points])
    hand = np.array(list(points.values()))
    outer = np.linalg.norm(hand[list(idx).index(45)] - hand[list(idx).index(36)])
    detectors = {"HOG, 512 px": FaceDetector(upsample=0), "HOG, upsampled to 1024 px": FaceDetector(upsample=1),
                 "CNN (MMOD), 512 px": FaceDetector("cnn", upsample=0)}
    rows, base = [], None
    for name, det in detectors.items():
        t = timeit(lambda det=det: det.boxes(image), repeats=7 if "HOG" in name else 3)
        base = base or t
        face = det.detect(image)[0]
        err = np.linalg.norm(face.landmarks[idx] - hand, axis=1).mean()
        rows.append(f"| detection: {name} | {t * 1000:.1f} ms | {t / base:.2f}x | {err:.2f} px = {err / outer:.3f} |")
    det = detectors["HOG, 512 px"]
    face = det.detect(image)[0]
    t_lmk = timeit(lambda: det.landmarks(image, face.box), repeats=21)
    rows.append(f"| 68 landmarks of one face | {t_lmk * 1000:.1f} ms | {t_lmk / base:.2f}x | |")
    desc = FaceDescriptor()
    t_desc = timeit(lambda: desc(image, face.landmarks), repeats=7)
    rows.append(f"| aligned 128-d descriptor of one face | {t_desc * 1000:.1f} ms | {t_desc / base:.2f}x | |")
    table = ("### Face detection and landmarks (dlib, `astronaut` 512 x 512, one face)\n\n"
             "| step | median time | vs HOG at 512 px | landmark error (21 hand-labelled points, / outer-eye "
             "distance) |\n| --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")
    print(table)
    update_section("faces", table)


if __name__ == "__main__":
    main()
