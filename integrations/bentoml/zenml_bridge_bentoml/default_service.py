"""The default BentoML service of ``bento_build`` for scikit-learn models (copied into a Bento).

It is a fixed file: everything that varies (service name, model tag) comes from
``zb_service.json`` beside it, so no user text is ever spliced into code. ``POST /predict``
takes ``{"data": ...}`` where ``...`` is a list of rows (``[[5.1, 3.5, 1.4, 0.2], ...]``), a list
of records (``[{"sepal_length": 5.1, ...}, ...]``), a DataFrame in "split" form
(``{"columns": [...], "data": [[...], ...]}``) or in "dict" form (``{"col": [values], ...}``),
and returns the list of predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bentoml
from bentoml.exceptions import InvalidArgument

CONFIG = json.loads((Path(__file__).parent / "zb_service.json").read_text(encoding="utf-8"))


def to_frame(data: Any, columns: list[str] | None) -> Any:
    """The model input for ``data`` (see the module docstring for the accepted shapes)."""
    import pandas as pd

    if isinstance(data, dict):
        if "data" in data and "columns" in data:
            return pd.DataFrame(data["data"], columns=data["columns"])
        return pd.DataFrame(data)
    if not isinstance(data, list) or not data:
        raise InvalidArgument(
            "'data' must be a non-empty list of rows, a list of records, or a DataFrame as "
            '{"columns": [...], "data": [[...]]}.'
        )
    if all(isinstance(row, dict) for row in data):
        return pd.DataFrame(data)
    if all(isinstance(row, list) for row in data):
        if columns is not None and all(len(row) == len(columns) for row in data):
            return pd.DataFrame(data, columns=columns)
        return data
    raise InvalidArgument("'data' mixes rows of different kinds: give lists or records.")


@bentoml.service(name=CONFIG["service"], workers=1)
class ZenmlBridgeModel:
    """Serves one scikit-learn model from the BentoML model store."""

    bento_model = bentoml.models.BentoModel(CONFIG["model_tag"])

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.bento_model)
        names = getattr(self.model, "feature_names_in_", None)
        self.columns = [str(n) for n in names] if names is not None else None

    @bentoml.api  # type: ignore[untyped-decorator, unused-ignore]
    def predict(self, data: Any) -> list[Any]:
        frame = to_frame(data, self.columns)
        try:
            result = self.model.predict(frame)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidArgument(f"The model cannot predict on this input: {exc}") from exc
        return [v.item() if hasattr(v, "item") else v for v in result]
