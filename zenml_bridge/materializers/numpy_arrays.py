"""numpy arrays and scalars as ``.npy`` files, read with ``allow_pickle=False``.

Object arrays would need pickle inside the ``.npy`` file, so they are declined (they fall
through to the pickle materializer when the step opts in).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from zenml_bridge.materializers.base import Materializer, join, prepare

ARRAY = "array.npy"
SCALAR = "scalar.npy"


class NumpyMaterializer(Materializer):
    """A ``numpy.ndarray`` as ``array.npy``; a numpy scalar (``np.float64(1.5)``) as
    ``scalar.npy``, so that it comes back as the same numpy scalar type."""

    name: ClassVar[str] = "numpy.ndarray"
    version: ClassVar[str] = "1"
    handles: ClassVar[tuple[str, ...]] = ("numpy.ndarray", "numpy.generic")

    def reject_reason(self, value: Any) -> str | None:
        if not (type(value) is np.ndarray or isinstance(value, np.generic)):
            return f"it is a subclass of ndarray ({type(value).__qualname__})"
        if value.dtype.hasobject:
            return f"its dtype {value.dtype} holds Python objects (.npy would need pickle)"
        return None

    def save(self, value: Any, folder: str, fs: Any) -> None:
        filename = SCALAR if isinstance(value, np.generic) else ARRAY
        prepare(folder, fs)
        with fs.open(join(folder, filename), "wb") as f:
            np.save(f, np.asarray(value), allow_pickle=False)

    def load(self, folder: str, fs: Any) -> Any:
        scalar = fs.exists(join(folder, SCALAR))
        with fs.open(join(folder, SCALAR if scalar else ARRAY), "rb") as f:
            array = np.load(f, allow_pickle=False)
        return array[()] if scalar else array
