"""The local runner: records, caching, failures, hooks, retries, parallelism, step context."""

from __future__ import annotations

import os
import re
import sys
import textwrap
from pathlib import Path

import pytest
import zb_pipes

import zenml_bridge
from zenml_bridge import get_step_context
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import RunFailed, load_run, run_pipeline


@pytest.fixture
def calls(tmp_path: Path, stores_env: dict[str, str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    path = tmp_path / "calls.txt"
    monkeypatch.setenv("ZB_TEST_CALLS", str(path))

    def read_and_clear() -> list[str]:
        names = path.read_text().split() if path.exists() else []
        path.write_text("")
        return names

    return read_and_clear


def test_run_records_outputs_metrics_and_metadata(calls) -> None:  # type: ignore[no-untyped-def]
    run = zb_pipes.chain(rows=4)
    assert run.status == "completed"
    assert run.parameters == {"rows": 4, "offset": 0}
    assert run.steps["total"].outputs["sum"].load() == 12
    assert run.steps["report"].outputs["output"].load() == {"value": 12, "count": 4}
    assert calls() == ["load", "double", "total", "report"]
    stored = load_run(run.run_id)
    assert stored.status == "completed"
    assert stored.steps["load"].metrics == {"rows": 4.0}
    assert stored.steps["total"].metadata == {"n": 4}
    assert stored.steps["total"].outputs["sum"].sha256 == run.steps["total"].outputs["sum"].sha256
    assert load_run("latest").run_id == run.run_id
    with pytest.raises(BridgeError, match=re.escape("has no output 'summ'. Did you mean 'sum'?")):
        stored.steps["total"].outputs["summ"]


def _log_and_return(n: int) -> int:
    get_step_context().log_metric("score", n / 4)
    get_step_context().log_metadata({"rows": n, "note": "text", "shape": (3, 4)})
    return n


@zenml_bridge.step
def measured(n: int = 2) -> int:
    return _log_and_return(n)


@zenml_bridge.step(timeout=60)
def measured_in_child(n: int = 2) -> int:  # a step with a timeout runs in a forked child
    return _log_and_return(n)


@zenml_bridge.pipeline
def logged(n: int = 2) -> None:
    measured(n=n)


@zenml_bridge.pipeline
def logged_in_child(n: int = 2) -> None:
    measured_in_child(n=n)


@pytest.mark.parametrize("flow", [logged, logged_in_child], ids=["in-process", "forked-child"])
def test_the_returned_record_has_what_the_steps_logged(calls, flow) -> None:  # type: ignore[no-untyped-def]
    """``run.steps[name].metrics``/``.metadata`` of the record a pipeline call returns are the
    recorded ones (not only ``load_run``'s): for executed steps, for cache hits (the
    producer's), and for a step run in a forked child."""
    for expected_status in ("completed", "cached"):
        run = flow(n=2)
        (returned,) = run.steps.values()
        assert returned.status == expected_status
        assert returned.metrics == {"score": 0.5}
        # As the store gives it back (JSON: a tuple is a list), in process or not.
        assert returned.metadata == {"rows": 2, "note": "text", "shape": [3, 4]}
        (stored,) = load_run(run.run_id).steps.values()
        assert (stored.metrics, stored.metadata) == (returned.metrics, returned.metadata)


def test_unchanged_run_is_served_from_cache(calls) -> None:  # type: ignore[no-untyped-def]
    first = zb_pipes.chain(rows=4)
    calls()
    second = zb_pipes.chain(rows=4)
    assert calls() == []
    assert {s.status for s in second.steps.values()} == {"cached"}
    assert second.steps["report"].outputs["output"].load() == {"value": 12, "count": 4}
    for name, step in first.steps.items():
        for out, art in step.outputs.items():
            assert second.steps[name].outputs[out].sha256 == art.sha256


def test_parameter_change_reruns_exactly_the_affected_steps(calls) -> None:  # type: ignore[no-untyped-def]
    zb_pipes.chain(rows=4)
    calls()
    run = zb_pipes.chain(rows=4, offset=1)
    assert calls() == ["total", "report"]
    assert {n: s.status for n, s in run.steps.items()} == {
        "load": "cached",
        "double": "cached",
        "total": "completed",
        "report": "completed",
    }


def test_same_upstream_content_keeps_downstream_cached(calls) -> None:  # type: ignore[no-untyped-def]
    zb_pipes.heads(rows=10)
    calls()
    run = zb_pipes.heads(rows=11)
    assert calls() == ["load", "head"]  # head's output is [0, 1, 2] again: total is a hit
    assert run.steps["total"].status == "cached"


def test_no_cache_and_cache_false_steps(calls) -> None:  # type: ignore[no-untyped-def]
    zb_pipes.chain(rows=4)
    calls()
    zb_pipes.chain(rows=4, cache=False)
    assert calls() == ["load", "double", "total", "report"]
    zb_pipes.uncached(rows=4)
    calls()
    zb_pipes.uncached(rows=4)
    assert calls() == ["stamp"]


def test_code_change_reruns_the_changed_step_and_downstream(
    tmp_path: Path, stores_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "code"
    package.mkdir()
    monkeypatch.syspath_prepend(str(package))
    template = textwrap.dedent(
        """
        from zenml_bridge import pipeline, step

        @step(cache_code="function")  # the others cover their whole module (the default)
        def first(n: int = 3) -> list[int]:
            return list(range(n))

        @step
        def second(data: list[int]) -> int:
            return sum(data) {op}

        @step
        def third(value: int) -> int:
            return value * 10

        @pipeline
        def changing(n: int = 3) -> None:
            third(second(first(n=n)))
        """
    )
    module_file = package / "zb_changing.py"

    def run_version(op: str):  # type: ignore[no-untyped-def]
        module_file.write_text(template.format(op=op))
        sys.modules.pop("zb_changing", None)
        import importlib

        importlib.invalidate_caches()
        module = importlib.import_module("zb_changing")
        return module.changing(n=3)

    run_version("+ 0")
    again = run_version("+ 0")
    assert {s.status for s in again.steps.values()} == {"cached"}
    changed = run_version("+ 100")  # another length: no stale .pyc
    assert {n: s.status for n, s in changed.steps.items()} == {
        "first": "cached",
        "second": "completed",
        "third": "completed",
    }
    assert changed.steps["third"].outputs["output"].load() == 1030


def test_failed_step_raises_records_and_calls_hook(
    calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    hook = tmp_path / "hook.txt"
    monkeypatch.setenv("ZB_TEST_HOOK", str(hook))
    with pytest.raises(RunFailed, match="boom in the user's step") as info:
        zb_pipes.failing(rows=3)
    run = info.value.run
    assert run.status == "failed"
    assert run.steps["boom"].status == "failed"
    assert "zb_pipes.py" in (run.steps["boom"].error or "")
    assert "step_runner.py" not in (run.steps["boom"].error or "")
    assert hook.read_text() == "boom: boom in the user's step"
    assert load_run(run.run_id).status == "failed"


def test_success_hook(
    stores_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = tmp_path / "hook.txt"
    monkeypatch.setenv("ZB_TEST_HOOK", str(hook))
    zb_pipes.hooked(rows=2)
    assert hook.read_text() == "ok fine"


def test_retries_until_success(calls, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ZB_TEST_FLAKY", str(tmp_path / "flaky.txt"))
    run = zb_pipes.retrying(rows=3)
    assert run.status == "completed"
    assert calls() == ["load", "flaky", "flaky", "flaky"]
    assert load_run(run.run_id).steps["flaky"].status == "completed"


def test_value_without_materializer_is_a_clear_error(stores_env: dict[str, str]) -> None:
    with pytest.raises(BridgeError, match=r"builtins\.object[\s\S]*allow_pickle=True"):
        zb_pipes.unstorable()
    assert load_run("latest").status == "failed"


def test_parallel_gives_the_same_artifacts(calls) -> None:  # type: ignore[no-untyped-def]
    sequential = zb_pipes.fan(cache=False)
    parallel = zb_pipes.fan(cache=False, parallel=4)
    assert parallel.status == "completed"
    assert parallel.steps["combine"].outputs["output"].load() == sum(i * i for i in range(6))
    for name, step in sequential.steps.items():
        assert parallel.steps[name].outputs["output"].sha256 == step.outputs["output"].sha256


def test_step_context_outside_a_step() -> None:
    with pytest.raises(BridgeError, match="outside a running step"):
        get_step_context()


def test_unknown_parameter_and_option(stores_env: dict[str, str]) -> None:
    with pytest.raises(
        BridgeError, match=re.escape("has no parameter 'rowz'. Did you mean 'rows'?")
    ):
        zb_pipes.chain(rowz=3)
    with pytest.raises(BridgeError, match="unknown option 'paralel'"):
        run_pipeline(zb_pipes.chain, {}, paralel=2)


def test_unwritable_artifact_root_changes_nothing(
    tmp_path: Path, stores_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("ZENML_BRIDGE_ARTIFACT_ROOT", str(blocker / "artifacts"))
    with pytest.raises(BridgeError, match="cannot hold artifacts"):
        zb_pipes.chain(rows=2)
    assert not Path(stores_env["ZENML_BRIDGE_METADATA_URL"][len("sqlite:///") :]).exists()


def test_corrupted_upstream_artifact_fails_the_reader(stores_env: dict[str, str]) -> None:
    run = zb_pipes.chain(rows=4)
    uri = run.steps["double"].outputs["output"].uri
    data_files = [p for p in Path(uri).iterdir() if p.is_file()]
    data_files[0].write_bytes(data_files[0].read_bytes() + b" ")
    with pytest.raises(BridgeError, match="is corrupted"):
        run.steps["double"].outputs["output"].load()
    # The damaged cached output is verified before the hit is served: a miss, run again.
    healed = zb_pipes.chain(rows=4, offset=5)
    assert healed.steps["double"].status == "completed"
    assert os.environ["ZENML_BRIDGE_ARTIFACT_ROOT"]
