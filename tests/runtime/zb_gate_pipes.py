"""Pipelines with gate steps (StopPipeline) and reports (HTML visualizations), importable by
name in entrypoint subprocesses too. Steps append their name to $ZB_TEST_CALLS when set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from zb_pipes import _called

from zenml_bridge import HTML, StopPipeline, pipeline, step

#: Set by a test: the gate reads the share from this file (the world it checks changes).
_FILE = "ZB_GATE_SHARE_FILE"


@step
def measure(share: float = 0.6) -> float:
    _called("measure")
    return share


@step(retries=2, retry_delay=0)
def gate(
    share: float, limit: float = 0.3
) -> tuple[Annotated[HTML, "report"], Annotated[float, "share_out"]]:
    _called("gate")
    if _FILE in os.environ:
        share = float(Path(os.environ[_FILE]).read_text())
    report = HTML(f"<h1>drift share {share}</h1>")
    if share > limit:
        raise StopPipeline(f"drift share {share} > {limit}", outputs={"report": report})
    return report, share


@step
def deploy(share: float) -> str:
    _called("deploy")
    return f"deployed at {share}"


@step
def announce(message: str) -> None:
    _called("announce")


@step
def side() -> int:
    _called("side")
    return 7


@pipeline
def gated(share: float = 0.6, limit: float = 0.3) -> None:
    value = measure(share)
    report, share_out = gate(value, limit)
    announce(deploy(share_out))
    side()


@step
def single_gate(share: float) -> HTML:
    _called("single_gate")
    raise StopPipeline("always", outputs=HTML("<p>only</p>"))


@step
def bad_gate(share: float) -> tuple[Annotated[int, "a"], Annotated[int, "b"]]:
    raise StopPipeline("typo", outputs={"c": 1})


@step
def read_page(page: str) -> int:
    _called("read_page")
    return len(page)


@pipeline
def single(share: float = 0.5) -> None:
    read_page(single_gate(measure(share)))


@pipeline
def bad(share: float = 0.5) -> None:
    bad_gate(measure(share))
