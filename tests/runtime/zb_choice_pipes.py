"""Steps choosing their output materializer with ``Annotated[T, "name", Materializer("key")]``."""

from __future__ import annotations

from typing import Annotated

from zenml_bridge import Materializer, pipeline, step


@step(allow_pickle=True)
def settings(depth: int = 3) -> Annotated[dict, "config", Materializer("builtins.pickle")]:
    return {"depth": depth, "key": (1, 2)}  # pickle keeps the tuple (JSON would not)


@step
def pair() -> tuple[Annotated[dict, "plain"], Annotated[str, "page", Materializer("builtins.str")]]:
    return {"a": 1}, "<p>b</p>"


@pipeline
def choosing(depth: int = 3) -> None:
    settings(depth)
    pair()
