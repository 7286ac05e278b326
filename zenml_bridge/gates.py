"""Public types for gates and reports: :class:`HTML` and the ``Materializer("key")`` marker.

Kept free of heavy imports: ``import zenml_bridge`` loads this module.

Naming: :class:`zenml_bridge.Materializer` (this module's :class:`MaterializerChoice`) is the
*annotation marker* that chooses a materializer by its registry key, e.g.
``Annotated[pd.DataFrame, "table", Materializer("pandas.parquet")]``. The *base class* to
write a materializer is :class:`zenml_bridge.materializers.Materializer`; import it from
``zenml_bridge.materializers`` when subclassing.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HTML", "MaterializerChoice"]


class HTML(str):
    """An HTML page a step returns as a report: stored as ``page.html``, its own visualization.

    Example:
        >>> page = HTML("<h1>drift</h1>")
        >>> isinstance(page, str), page.upper()
        (True, '<H1>DRIFT</H1>')
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"HTML({str.__repr__(self)})"


@dataclass(frozen=True, slots=True)
class MaterializerChoice:
    """Annotation marker: ``Annotated[T, "name", Materializer("key")]`` picks a materializer.

    ``key`` is a registry name (``zenml-bridge integration list`` / docs/materializers.md lists
    them, e.g. ``"builtins.json"``, ``"pickle"``). An unknown key is refused when the pipeline
    is traced.

    Example:
        >>> from typing import Annotated
        >>> Annotated[dict, "config", MaterializerChoice("builtins.json")].__metadata__[1]
        Materializer('builtins.json')
    """

    key: str

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.strip():
            from zenml_bridge.errors import BridgeError

            raise BridgeError(
                f"Materializer({self.key!r}): the key must be a materializer's registry name, "
                "e.g. Materializer('builtins.json'); see docs/materializers.md for the names."
            )

    def __repr__(self) -> str:
        return f"Materializer({self.key!r})"
