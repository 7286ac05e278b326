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


# -- YAML 1.2 (what the KFP API server's Go parser and ruamel.yaml read) ----------------------

NUMERIC_LOOKING = st.one_of(
    st.sampled_from(
        [
            "1e3",
            "1E3",
            "-1e-3",
            "0o17",
            "0x1F",
            ".5",
            "5.",
            "+1",
            "-0",
            ".inf",
            "-.Inf",
            ".NaN",
            "null",
            "Null",
            "NULL",
            "~",
            "true",
            "True",
            "FALSE",
            "yes",
            "no",
            "on",
            "off",
            "y",
            "1_000",
            "1:20",
            "2001-12-14",
            "0b101",
            "012",
            "1.0e+5",
            "",
            "2.1.0",
            "v1",
        ]
    ),  # fmt: skip
    st.from_regex(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", fullmatch=True),
    st.from_regex(r"0o[0-7]{1,4}|0x[0-9a-fA-F]{1,4}", fullmatch=True),
    TEXT,
)


def _yaml12() -> object:
    from ruamel.yaml import YAML

    parser = YAML(typ="safe", pure=True)
    parser.version = (1, 2)
    return parser


@settings(max_examples=500, deadline=None)
@given(st.lists(NUMERIC_LOOKING, max_size=8), st.dictionaries(NUMERIC_LOOKING, TEXT, max_size=4))
def test_strings_stay_strings_for_a_yaml_1_2_parser(items: list[str], mapping: dict) -> None:
    text = dump_documents([{"items": items, "mapping": mapping}])
    loaded = _yaml12().load("%YAML 1.2\n---\n" + text)  # type: ignore[attr-defined]
    assert loaded == {"items": items, "mapping": mapping}, text


def test_numbers_keep_their_types_for_a_yaml_1_2_parser() -> None:
    data = {"i": 3, "f": 0.25, "e": 1e-05, "big": 1e300, "b": True, "n": None}
    loaded = _yaml12().load("%YAML 1.2\n---\n" + dump_documents([data]))  # type: ignore[attr-defined]
    assert loaded == data and type(loaded["f"]) is float and type(loaded["i"]) is int


def test_numeric_looking_strings_are_quoted() -> None:
    for text in ("1e3", "0o17", ".inf", "yes", "null"):
        assert scalar(text, "") == f'"{text}"'
