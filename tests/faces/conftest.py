"""Real face media for the detector tests: scikit-image's ``astronaut`` (public domain, NASA) and a short
clip made from it; one detector for the whole session (loading dlib's models takes a while)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def astronaut_hand_labels() -> dict[int, tuple[float, float]]:
    """Index -> (x, y) of hand-labelled points of the astronaut's face."""
    return ASTRONAUT_HAND_LANDMARKS


# 21 well-defined points of the astronaut's face, labelled by hand on 6-12x enlargements with a pixel grid
# (pixel centres on integers; about +-1 px of labelling uncertainty): eyes, nose, mouth, chin.
ASTRONAUT_HAND_LANDMARKS = {
    36: (192.5, 100.5), 37: (198.0, 96.5), 38: (205.0, 96.0), 39: (212.5, 101.0), 40: (205.0, 103.5),
    41: (198.0, 103.0), 42: (237.5, 103.0), 43: (243.5, 99.2), 44: (250.0, 99.2), 45: (256.5, 102.0),
    46: (250.0, 105.4), 47: (243.5, 105.4), 30: (222.5, 126.0), 31: (213.0, 129.0), 33: (224.5, 130.75),
    35: (233.0, 129.5), 48: (203.0, 140.0), 51: (222.0, 135.5), 54: (242.0, 141.0), 57: (222.0, 153.0),
    8: (224.0, 177.5),
}


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # (512, 512, 3) uint8


@pytest.fixture(scope="session")
def detector():
    from jointportrait.faces import FaceDetector

    return FaceDetector()
