"""Face models by name or file: the one loader (DESIGN.md, "Face model").

``--face-model`` of ``synth``, ``track`` and ``demo`` takes a registered name or a path:

- ``ict`` (the default): ICT-FaceKit "Face Model Light", shipped inside the package
  (:data:`jointportrait.face_models.ict.ICT_LIGHT_PATH`), so it is found from any folder;
- ``procedural``: the project's own procedural head (:mod:`jointportrait.face_models.procedural`);
- a path to an ICT-style ``.npz`` archive.

A registered name wins over a file of the same name in the working folder (write ``./ict`` for
the file). Every model says what it is in ``FaceModel.name`` and ``FaceModel.source``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from jointportrait.errors import MissingPathError
from jointportrait.face_models.ict import ICT_LIGHT_PATH, read_ict_npz
from jointportrait.face_models.model import FaceModel
from jointportrait.face_models.procedural import build_procedural_head

logger = logging.getLogger(__name__)

# name -> builder (explicit registry; a new model kind is one line here)
FACE_MODELS: dict[str, Callable[[], FaceModel]] = {
    "ict": lambda: read_ict_npz(ICT_LIGHT_PATH),
    "procedural": build_procedural_head,
}
DEFAULT_FACE_MODEL = "ict"

_CACHE: dict[str, FaceModel] = {}


def load_face_model(spec: str | os.PathLike | None = None) -> FaceModel:
    """The face model registered as ``spec`` (:data:`FACE_MODELS`), or read from the ``.npz`` file ``spec``;
    None is :data:`DEFAULT_FACE_MODEL`. A missing file is a :class:`MissingPathError`.

    Loaded models are cached per name or resolved path (treat them as read-only).
    """
    spec = DEFAULT_FACE_MODEL if spec is None else spec
    if isinstance(spec, str) and spec in FACE_MODELS:
        key, build = spec, FACE_MODELS[spec]
    else:
        path = Path(spec)
        if not path.is_file():
            raise MissingPathError(f"{path}: face model file not found (or give a name: {', '.join(FACE_MODELS)})")
        key, build = str(path.resolve()), lambda: read_ict_npz(path)
    if key not in _CACHE:
        _CACHE[key] = build()
        logger.info("face model: %s (%s)", _CACHE[key].name, _CACHE[key].source)
    return _CACHE[key]
