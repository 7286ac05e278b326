"""Building pipelines and compile options for the Airflow tests (no Airflow needed)."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path
from typing import Any

from zenml_bridge import ir
from zenml_bridge.compilers.airflow import AirflowCompiler, template_text
from zenml_bridge.compilers.base import CompileOptions, CompileResult

ROOT = "s3://zenml-bucket/artifacts"
FAKE_ARCHIVE_SHA = hashlib.sha256(b"golden code archive").hexdigest()
FAKE_COMPONENTS_SHA = hashlib.sha256(b"golden component config").hexdigest()
#: CompileOptions fields of a published stack component config (as the CLI sets them).
COMPONENTS = {
    "components_uri": f"{ROOT}/.zenml_bridge/components/{FAKE_COMPONENTS_SHA}.json",
    "components_sha256": FAKE_COMPONENTS_SHA,
}


def make_step(name: str, upstream: tuple[str, ...] = (), **fields: Any) -> ir.Step:
    inputs = tuple(ir.InputRef.of_output(f"in_{u}", u, "output") for u in upstream)
    return ir.Step(
        name=name,
        source=f"flows.fake:{name}",
        source_file="flows/fake.py",
        source_line=1,
        code_hash="0" * 64,
        inputs=inputs,
        outputs=(ir.OutputSpec(name="output"),),
        **fields,
    )


def make_pipeline(*steps: ir.Step, **fields: Any) -> ir.Pipeline:
    return ir.Pipeline(
        name=fields.pop("name", "demo"),
        source="flows.fake:demo",
        source_file="flows/fake.py",
        source_line=1,
        steps=steps or (make_step("a"),),
        **fields,
    )


def options_for(
    pipeline: ir.Pipeline, out: Path, archive: bool = False, **fields: Any
) -> CompileOptions:
    """Options as the CLI fills them after publishing (fixed URIs, so outputs are stable)."""
    sha = ir.sha256(pipeline)
    archive_fields: dict[str, Any] = {}
    if archive:
        archive_fields = {
            "code_archive_uri": f"{ROOT}/.zenml_bridge/code/{FAKE_ARCHIVE_SHA}.tar.gz",
            "code_archive_sha256": FAKE_ARCHIVE_SHA,
        }
    return CompileOptions(
        out=out,
        ir_uri=f"{ROOT}/.zenml_bridge/ir/{sha}.json",
        ir_sha256=sha,
        **archive_fields,
        **fields,
    )


def compile_to(pipeline: ir.Pipeline, out: Path, **fields: Any) -> tuple[CompileResult, str]:
    result = AirflowCompiler().compile(pipeline, options_for(pipeline, out, **fields))
    return result, result.paths[0].read_text(encoding="utf-8")


def data_of(source: str) -> Any:
    """The PIPELINE literal of a generated file, after checking the file is the template's
    statements plus that one literal and nothing else."""
    tree = ast.parse(source)
    template = ast.parse(template_text())
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == [
            "PIPELINE"
        ]:
            found.append(ast.literal_eval(node.value))
            node.value = ast.Name(id="__PIPELINE__", ctx=ast.Load())
    assert len(found) == 1
    assert ast.dump(tree) == ast.dump(template), "the generated file has extra statements"
    return found[0]
