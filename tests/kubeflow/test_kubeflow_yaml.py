"""The YAML dumper of the Kubeflow backend reads back (PyYAML, and kfp) as the data it was given."""

from __future__ import annotations

import math

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from zenml_bridge.compilers.kubeflow_yaml import dump_documents, scalar

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        TEXT,
        st.sampled_from(
            [
                "yes",
                "No",
                "~",
                "1:20",
                "0x1F",
                "2001-12-14",
                "=",
                "<<",
                "...",
                "---",
                "a: b",
                "- x",
                "#c",
                "line\n",
                "two\nlines\n",
                " lead\n",
                "tail \n",
                "\u2028",
                "\x85",
                "\ufeff",
                "tab\there\n",
                "ünï\n✓\n",
            ]
        ),
    ),  # fmt: skip
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=20,
)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(TEXT, VALUES, max_size=6), st.dictionaries(TEXT, VALUES, max_size=3))
def test_every_json_value_reads_back_unchanged(first: dict, second: dict) -> None:
    text = dump_documents([first, second])
    loaded = list(yaml.safe_load_all(text))
    assert _same(loaded[0] or {}, first) and _same(loaded[1] or {}, second), text


def test_scalars_are_readable() -> None:
    assert scalar("system.Artifact", "") == "system.Artifact"
    assert scalar("s3://bucket/ir/x.json", "") == "s3://bucket/ir/x.json"
    assert scalar("yes", "") == '"yes"'
    assert scalar("{{$}}", "") == '"{{$}}"'
    assert scalar(1e-05, "") == "1.0e-05"
    assert scalar("a\nb\n", "  ") == "|\n  a\n  b"
