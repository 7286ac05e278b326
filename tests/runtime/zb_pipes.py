"""Pipelines for the runtime tests (importable by name, also by entrypoint subprocesses).

Steps append their name to the file named by $ZB_TEST_CALLS, so tests can see which step
functions really ran, in this process or in others.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

from zenml_bridge import get_step_context, pipeline, step
from zenml_bridge.materializers import Materializer, register
from zenml_bridge.materializers.base import join


def _called(name: str) -> None:
    path = os.environ.get("ZB_TEST_CALLS")
    if path:
        with open(path, "a") as handle:
            handle.write(name + "\n")


@step
def load(rows: int = 10) -> list[int]:
    _called("load")
    get_step_context().log_metric("rows", rows)
    return list(range(rows))


@step
def head(data: list[int], n: int = 3) -> list[int]:
    _called("head")
    return data[:n]


@step
def double(data: list[int]) -> list[int]:
    _called("double")
    return [2 * x for x in data]


@step
def total(data: list[int], offset: int = 0) -> Annotated[int, "sum"]:
    _called("total")
    get_step_context().log_metadata({"n": len(data)})
    return sum(data) + offset


@step
def report(value: int, data: list[int]) -> dict[str, Any]:
    _called("report")
    return {"value": value, "count": len(data)}


@step(cache=False)
def stamp(value: int) -> str:
    _called("stamp")
    return f"seen {value}"


@pipeline
def chain(rows: int = 10, offset: int = 0) -> None:
    """load -> double -> total -> report (diamond: report also reads load)."""
    data = load(rows=rows)
    value = total(double(data), offset=offset)
    report(value, data)


@pipeline
def heads(rows: int = 10) -> None:
    """load -> head -> total: total's input is the same for every rows >= 3."""
    total(head(load(rows=rows)))


@pipeline
def uncached(rows: int = 4) -> None:
    stamp(total(load(rows=rows)))


@step
def part(i: int) -> int:
    _called(f"part{i}")
    return i * i


@step
def combine(*parts: int) -> int:
    _called("combine")
    return sum(parts)


@pipeline
def fan(width: int = 6) -> None:
    combine(*[part(i=i) for i in range(6)])


def failure_hook(exc: BaseException) -> None:
    marker = os.environ.get("ZB_TEST_HOOK")
    if marker:
        context = get_step_context()
        Path(marker).write_text(f"{context.step_name}: {exc}")


def success_hook() -> None:
    marker = os.environ.get("ZB_TEST_HOOK")
    if marker:
        Path(marker).write_text(f"ok {get_step_context().step_name}")


@step(on_failure=failure_hook)
def boom(data: list[int]) -> int:
    _called("boom")
    raise ValueError("boom in the user's step")


@pipeline
def failing(rows: int = 3) -> None:
    boom(load(rows=rows))


@step(on_success=success_hook)
def fine(data: list[int]) -> int:
    return len(data)


@pipeline
def hooked(rows: int = 3) -> None:
    fine(load(rows=rows))


@step(retries=2, retry_delay=0)
def flaky(data: list[int]) -> int:
    _called("flaky")
    counter = Path(os.environ["ZB_TEST_FLAKY"])
    count = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(count + 1))
    if count < 2:
        raise RuntimeError(f"transient failure {count + 1}")
    return len(data)


@pipeline
def retrying(rows: int = 3) -> None:
    flaky(load(rows=rows))


@step
def opaque(rows: int = 1) -> object:
    return object()


@pipeline
def unstorable() -> None:
    opaque()


class Blob:
    """A value with a slow materializer: tests kill a process while it writes."""

    def __init__(self, data: bytes) -> None:
        self.data = data


@register
class BlobMaterializer(Materializer):
    name = "tests.blob"
    handles = (f"{__name__}.Blob",)

    def save(self, value: Any, folder: str, fs: Any) -> None:
        with fs.open(join(folder, "blob.bin"), "wb") as handle:
            handle.write(value.data[: len(value.data) // 2])
            handle.flush()
            marker = os.environ.get("ZB_TEST_WRITING")
            if marker:
                Path(marker).write_text("writing")
                time.sleep(60)  # the test kills us here
            handle.write(value.data[len(value.data) // 2 :])

    def load(self, folder: str, fs: Any) -> Any:
        with fs.open(join(folder, "blob.bin"), "rb") as handle:
            return Blob(handle.read())


@step
def make_blob(data: list[int]) -> Blob:
    _called("make_blob")
    return Blob(bytes(data) * 1000)


@step
def blob_size(blob: Blob) -> int:
    _called("blob_size")
    return len(blob.data)


@pipeline
def blobs(rows: int = 5) -> None:
    blob_size(make_blob(load(rows=rows)))


# -- for test_runtime_fixes.py ------------------------------------------------------------------


@step
def quits(data: list[int]) -> int:
    _called("quits")
    raise SystemExit(0)  # a user's sys.exit(0): must count as a failure, not a success


@pipeline
def quitting(rows: int = 3) -> None:
    quits(load(rows=rows))


@step(env={"ZB_TEST_STEP_ENV": "from-env"})
def with_env(pause: float = 0.0) -> str:
    time.sleep(pause)
    return os.environ.get("ZB_TEST_STEP_ENV", "<unset>")


@step
def without_env(pause: float = 0.0) -> str:
    deadline = time.monotonic() + pause
    seen = "<unset>"
    while time.monotonic() < deadline:  # look while the other step may be running
        seen = os.environ.get("ZB_TEST_STEP_ENV", seen)
        time.sleep(0.01)
    return os.environ.get("ZB_TEST_STEP_ENV", seen)


@pipeline
def envs(pause: float = 0.0) -> None:
    with_env(pause=pause)
    without_env(pause=pause)
