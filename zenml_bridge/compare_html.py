"""A self-contained HTML page of a run comparison (``runs compare --html FILE``).

The page is one file with no script and no external resource (it opens offline, from an e-mail
attachment or a CI artifact). Charts are bar charts of each numeric metric across the runs,
drawn as inline SVG: one bar per run is simple enough that a chart library would add a
dependency (and JavaScript) without adding anything. Every text taken from the store (run ids,
parameter values, artifact values, notes) passes :func:`html.escape` after redaction.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from zenml_bridge.redact import redact_text

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;vertical-align:top;font-family:ui-monospace,monospace;font-size:13px}
th{background:#f3f3f3} tr.differs td{background:#fff6e0} .note{color:#8a5a00}
.charts{display:flex;flex-wrap:wrap;gap:1.2em} figure{margin:0} figcaption{font-size:12px}
svg text{font:11px sans-serif}
"""
_COLORS = ("#4878d0", "#ee854a", "#6acc64", "#d65f5f", "#956cb4", "#8c613c", "#dc7ec0")


def _text(value: Any) -> str:
    """A value as escaped, redacted text (JSON for anything not a string)."""
    shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return html.escape(redact_text(shown))


def _cell(value: Any) -> str:
    return f"<td>{_text(value)}</td>"


def _table(headers: Sequence[str], rows: Sequence[tuple[bool, Sequence[str]]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        f'<tr{" class=differs" if differs else ""}>{"".join(cells)}</tr>' for differs, cells in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bar_chart(title: str, labels: Sequence[str], values: Sequence[Any]) -> str:
    """An inline SVG bar chart of numeric ``values`` (non-numbers are left out as gaps)."""
    numbers = [
        float(v)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        else None
        for v in values
    ]
    present = [n for n in numbers if n is not None]
    width, height, pad = 60 * len(values) + 60, 180, 30
    low, high = min([0.0, *present]), max([0.0, *present])
    span = (high - low) or 1.0

    def y(v: float) -> float:
        return pad + (high - v) / span * (height - 2 * pad)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<line x1="40" x2="{width - 10}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#999"/>',
    ]
    for i, (label, number) in enumerate(zip(labels, numbers)):
        x = 50 + 60 * i
        if number is not None:
            top, bottom = sorted((y(number), y(0)))
            color = _COLORS[i % len(_COLORS)]
            parts.append(
                f'<rect x="{x}" y="{top:.1f}" width="40" height="{max(bottom - top, 1):.1f}" '
                f'fill="{color}"><title>{html.escape(f"{label}: {number:g}")}</title></rect>'
            )
            parts.append(
                f'<text x="{x + 20}" y="{top - 4:.1f}" text-anchor="middle">'
                f"{html.escape(f'{number:.4g}')}</text>"
            )
        parts.append(
            f'<text x="{x + 20}" y="{height - 8}" text-anchor="middle">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return (
        f'<figure class="chart">{"".join(parts)}'
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
    )


def render_html(report: Mapping[str, Any]) -> str:
    """The comparison document of :func:`zenml_bridge.compare.compare_runs` as one HTML page."""
    runs = report["runs"]
    letters = [_letter(i) for i in range(len(runs))]
    out = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        '<meta name="generator" content="zenml-bridge runs compare">',
        f"<title>Run comparison: {_text(' vs '.join(r['run_id'] for r in runs))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Run comparison</h1>",
        _table(
            ("", "RUN", "PIPELINE", "STATUS", "BACKEND", "DURATION (s)", "GIT"),
            [
                (
                    False,
                    [
                        f"<td>{letter}</td>",
                        _cell(r["run_id"]),
                        _cell(r["pipeline"]),
                        _cell(r["status"]),
                        _cell(r["backend"]),
                        _cell(r["duration_s"]),
                        _cell(r["git_sha"] or "-"),
                    ],
                )
                for letter, r in zip(letters, runs)
            ],
        ),
    ]
    out.extend(f'<p class="note">{_text(note)}</p>' for note in report["notes"])
    numeric = [m for m in report["metrics"] if any(_is_number(v) for v in m["values"])]
    if numeric:
        out.append('<h2 id="charts">Metrics across runs</h2><div class="charts">')
        for m in numeric:
            name = m["name"] if m["step"] is None else f"{m['step']}.{m['name']}"
            out.append(_bar_chart(name, letters, m["values"]))
        out.append("</div>")
    sections = (
        (
            "Parameters",
            "PARAMETER",
            [(p["name"], p["values"], p["differs"]) for p in report["parameters"]],
        ),
        (
            "Metrics",
            "METRIC",
            [
                (
                    m["name"] if m["step"] is None else f"{m['step']}.{m['name']}",
                    m["values"],
                    m["differs"],
                )
                for m in report["metrics"]
            ],
        ),
    )
    for title, head, items in sections:
        if items:
            out.append(f"<h2>{title}</h2>")
            rows = [
                (
                    differs,
                    [_cell(name), *(_cell(v) for v in values), _cell("differs" if differs else "")],
                )
                for name, values, differs in items
            ]
            out.append(_table((head, *letters, ""), rows))
    out.append("<h2>Steps</h2>")
    step_rows = []
    for s in report["steps"]:
        cells = [_cell(s["step"])]
        for cell in s["runs"]:
            if cell is None:
                cells.append("<td>-</td>")
                continue
            code = (cell["code_hash"] or "-")[:12]
            cells.append(
                f"<td>{_text(cell['status'])}<br>code {_text(code)}"
                f"<br>{_text(cell['duration_s'])} s</td>"
            )
        cells.append(_cell(", ".join(s["changed"])))
        step_rows.append((s["differs"], cells))
    out.append(_table(("STEP", *letters, "CHANGED"), step_rows))
    out.append("<h2>Artifacts</h2>")
    art_rows = []
    for a in report["artifacts"]:
        cells = [_cell(f"{a['step']}.{a['output']}")]
        for cell in a["runs"]:
            if cell is None:
                cells.append("<td>-</td>")
                continue
            shown = f"sha256 {_text((cell['sha256'] or '')[:16])}"
            if "value" in cell:
                shown += f"<br>value {_text(cell['value'])}"
            cells.append(f"<td>{shown}</td>")
        cells.append(_cell("differs" if a["differs"] else "same"))
        art_rows.append((a["differs"], cells))
    out.append(_table(("STEP.OUTPUT", *letters, ""), art_rows))
    out.append(f"<p><small>schema {_text(report['schema'])}</small></p></body></html>\n")
    return "\n".join(out)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _letter(index: int) -> str:
    return chr(ord("A") + index) if index < 26 else f"R{index + 1}"
