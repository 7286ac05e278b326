"""The ``ir`` target: the pipeline IR itself, as a canonical JSON file."""

from __future__ import annotations

from zenml_bridge import ir
from zenml_bridge.compilers.base import CompileOptions, Compiler, CompileResult, write_atomic


class IRCompiler(Compiler):
    """Writes the IR (the input of every other compiler) as canonical, indented JSON."""

    target = "ir"
    SUPPORTS_SCHEDULE = SUPPORTS_RESOURCES = SUPPORTS_RETRIES = SUPPORTS_TIMEOUT = True

    def emit(self, pipeline: ir.Pipeline, options: CompileOptions) -> CompileResult:
        out = options.out
        if out.is_dir():
            out = out / f"{pipeline.name}.ir.json"
        write_atomic(out, ir.dumps(pipeline))
        return CompileResult(paths=(out,), notes=(f"sha256 {ir.sha256(pipeline)}",))
