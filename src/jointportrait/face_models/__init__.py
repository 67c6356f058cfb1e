"""Linear morphable face models and their one loader (paper Sec. 5.1, Suppl. 7.3).

The synthetic studio data, the face tracker and the benchmarks use a PCA face model of
50 identity and 25 expression components. A low layer: it imports only
:mod:`jointportrait.errors`.

- :mod:`.model`: the :class:`FaceModel` type and what every kind derives (expression PCA, skin masks);
- :mod:`.ict`: the ICT-FaceKit light model reader and the copy shipped in ``assets/`` (MIT licence);
- :mod:`.procedural`: the project's own procedural head;
- :mod:`.registry`: :func:`load_face_model` by name (``ict``, the default; ``procedural``) or path.
"""

from jointportrait.face_models.model import NUM_EXPRESSION, NUM_IDENTITY, FaceModel
from jointportrait.face_models.registry import DEFAULT_FACE_MODEL, FACE_MODELS, load_face_model

__all__ = ["DEFAULT_FACE_MODEL", "FACE_MODELS", "NUM_EXPRESSION", "NUM_IDENTITY", "FaceModel", "load_face_model"]
