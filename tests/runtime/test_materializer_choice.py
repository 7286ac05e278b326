"""``Annotated[T, "name", zenml_bridge.Materializer("key")]`` (issue 12): the IR records the key,
the runtime stores and loads with it, an unknown key is refused when the pipeline is traced."""

from __future__ import annotations

from typing import Annotated

import pytest
import zb_choice_pipes as pipes

from zenml_bridge import BridgeError, Materializer, pipeline, step
from zenml_bridge.runtime import run_pipeline


def test_the_ir_records_the_chosen_materializer() -> None:
    outputs = {
        (s.name, o.name): o.materializer for s in pipes.choosing.to_ir().steps for o in s.outputs
    }
    assert outputs == {
        ("settings", "config"): "builtins.pickle",
        ("pair", "plain"): None,
        ("pair", "page"): "builtins.str",
    }


def test_the_runtime_stores_and_loads_with_it(stores_env: dict[str, str]) -> None:
    run = run_pipeline(pipes.choosing, {"depth": 5})
    config = run.steps["settings"].outputs["config"]
    assert config.materializer == "builtins.pickle"  # by type it would be builtins.json
    assert config.load() == {"depth": 5, "key": (1, 2)}
    assert run.steps["pair"].outputs["plain"].materializer == "builtins.json"
    assert run.steps["pair"].outputs["page"].materializer == "builtins.str"


def test_an_unknown_key_is_refused_at_trace_time() -> None:
    @step
    def typo() -> Annotated[str, "out", Materializer("builtins.pickel")]:
        return "x"

    @pipeline
    def wrong() -> None:
        typo()

    with pytest.raises(BridgeError) as caught:
        wrong.to_ir()
    message = str(caught.value)
    assert "Materializer('builtins.pickel') chosen for output 'out' of step 'typo' is not a " in (
        message
    )
    assert "Did you mean 'builtins.pickle'?" in message


def test_an_empty_key_is_refused_where_it_is_written() -> None:
    with pytest.raises(BridgeError, match="the key must be a materializer's registry name"):
        Materializer("")
