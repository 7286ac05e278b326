"""scikit-learn estimators with joblib (``model.joblib``).

Why joblib and not skops: joblib is scikit-learn's documented persistence, stores every
estimator (custom ones, pipelines holding user functions, forests) and writes the same bytes
for the same model, so the content hash of an unchanged model does not change and the steps
after it stay cached. skops refuses to load types outside its trust list (a random forest's
``Tree`` included) and names its zip members by ``id()``, so every save hashes differently.

joblib files are pickles: loading one runs code named in the file. Estimators are stored this
way WITHOUT ``@step(allow_pickle=True)``, on purpose: the estimator types are the one case
where pickle is the format of the library itself, and a step that returns a model should not
need a security switch. What protects readers is the artifact's sha256, recorded in the
metadata store when the step wrote it and checked by the artifact store on the very bytes
that are then unpickled (:meth:`SklearnMaterializer.load_files`): a file replaced in a shared
store is refused before it is unpickled. Anyone who can
write both the artifact store and the metadata store can still run code in the steps that
load models: give those stores the access control of your code repository. ``allow_pickle``
governs arbitrary objects only; it does not change how estimators are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from zenml_bridge.errors import BridgeError
from zenml_bridge.materializers.base import Materializer, join, prepare

FILENAME = "model.joblib"


class SklearnMaterializer(Materializer):
    """A scikit-learn estimator (anything deriving from ``BaseEstimator``) as ``model.joblib``."""

    name: ClassVar[str] = "sklearn.joblib"
    version: ClassVar[str] = "1"
    handles: ClassVar[tuple[str, ...]] = ("sklearn.base.BaseEstimator",)
    pickle_based: ClassVar[bool] = True
    requires_opt_in: ClassVar[bool] = False

    def reject_reason(self, value: Any) -> str | None:
        cls = type(value)
        if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
            # joblib pickles classes by reference: another process could not import it.
            return (
                f"its class {cls.__qualname__} is defined in {cls.__module__} and could not be "
                "imported by another process; define it in a module"
            )
        return None

    def save(self, value: Any, folder: str, fs: Any) -> None:
        import joblib

        prepare(folder, fs)
        with fs.open(join(folder, FILENAME), "wb") as f:
            joblib.dump(value, f)

    def load(self, folder: str, fs: Any) -> Any:
        import joblib

        with fs.open(join(folder, FILENAME), "rb") as f:
            return joblib.load(f)  # a pickle: see the module docstring for why this is allowed

    def load_files(self, files: Mapping[str, bytes]) -> Any:
        """Load from bytes the artifact store has just verified: the hash was computed over
        exactly what is unpickled, so a file swapped after the check is never loaded."""
        import io

        import joblib

        if FILENAME not in files:
            raise BridgeError(
                f"The model artifact has no {FILENAME} (files: {', '.join(sorted(files))})."
            )
        return joblib.load(io.BytesIO(files[FILENAME]))
