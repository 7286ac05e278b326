"""Issue 9, items 16 and 19 (parsing): nested pipelines, bounded ``-p``, ``--params-json`` and
``run.yaml`` parsing; every case is one message and exit 2, never a traceback."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from zenml_bridge import BridgeError, pipeline, step
from zenml_bridge.cli.common import parse_parameters
from zenml_bridge.cli.main import main
from zenml_bridge.config import load_run_config

#: The documented limits (zenml_bridge.config.MAX_DEPTH / MAX_VALUES).
MAX_DEPTH = 64
MAX_VALUES = 100_000

GOLDEN = Path(__file__).parents[1] / "golden" / "pipelines"
LINEAR = f"{GOLDEN / 'linear.py'}:linear"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stores in tmp_path, run from an empty folder: nothing touches the user's home."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("ZENML_BRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", f"sqlite:///{tmp_path / 'metadata.db'}")
    monkeypatch.setenv("ZENML_BRIDGE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.chdir(work)
    return tmp_path


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_message(code: int, err: str, message: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert err.startswith("Error: ") and message in err, err


# -- 16: a pipeline called inside another pipeline ------------------------------------------


@step
def one_step() -> int:
    return 1


@pipeline
def inner_pipe() -> None:
    one_step()


@pipeline
def outer_pipe() -> None:
    inner_pipe()


def test_a_pipeline_called_in_a_pipeline_body_is_refused_before_anything_runs(home: Path) -> None:
    with pytest.raises(
        BridgeError,
        match=re.escape(
            "Pipeline 'inner_pipe' is called inside the body of pipeline 'outer_pipe' ("
        ),
    ) as caught:
        outer_pipe()  # as a user runs it: the trace must not run inner_pipe
    message = str(caught.value)
    assert "test_parsing_limits.py:" in message  # the user's line
    assert "pipelines cannot call pipelines" in message and "directly" in message
    # Nothing was run or recorded: the inner pipeline never reached the runner.
    if (home / "metadata.db").exists():
        from zenml_bridge.stores.metadata import MetadataStore

        assert MetadataStore(f"sqlite:///{home / 'metadata.db'}").list_runs() == []
    assert not (home / "artifacts").exists() or not any((home / "artifacts").iterdir())


# -- 19: -p and --params-json -----------------------------------------------------------------


def test_a_5000_digit_number_in_p_is_a_message() -> None:
    with pytest.raises(
        BridgeError,
        match=re.escape("The value of -p rows holds a number of more than 4300 digits"),
    ):
        parse_parameters(["rows=" + "9" * 5000])


def test_1000_deep_nesting_in_p_is_a_message() -> None:
    with pytest.raises(
        BridgeError,
        match=re.escape(
            f"The value of -p rows nests lists or mappings more than {MAX_DEPTH} levels deep."
        ),
    ):
        parse_parameters(["rows=" + "[" * 1000 + "]" * 1000])
    # Just below the limit still parses (and text that is not JSON stays text).
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_parameters([f"rows={deep}", "name=abc"])["name"] == "abc"


def test_p_limits_through_the_cli_exit_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "run", LINEAR, "-p", "rows=" + "9" * 5000)
    _assert_message(code, err, "holds a number of more than 4300 digits")
    code, _, err = _cli(capsys, "run", LINEAR, "-p", "rows=" + "[" * 1000 + "]" * 1000)
    _assert_message(code, err, "nests lists or mappings more than 64 levels deep")
    assert not (home / "artifacts").exists()


def test_params_json_limits() -> None:
    from zenml_bridge.config import parse_json_value

    with pytest.raises(BridgeError, match=re.escape("The --params-json value is not valid JSON")):
        parse_json_value("{", "--params-json value")
    with pytest.raises(BridgeError, match="more than 4300 digits"):
        parse_json_value('{"rows": ' + "9" * 5000 + "}", "--params-json value")
    with pytest.raises(BridgeError, match="levels deep"):
        parse_json_value('{"a": ' + "[" * 5000 + "]" * 5000 + "}", "--params-json value")


# -- 19: run.yaml -------------------------------------------------------------------------------


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_recursive_alias_in_run_yaml(tmp_path: Path) -> None:
    path = _config(tmp_path, "parameters:\n  rows: &a [1, *a]\n")
    with pytest.raises(
        BridgeError,
        match=re.escape(
            f"The run config {path} holds a recursive alias at parameters.rows[1] (a value that "
            "contains itself). Remove the alias or write the value out."
        ),
    ):
        load_run_config(path)


def test_integer_keys_in_run_yaml(tmp_path: Path) -> None:
    path = _config(tmp_path, "parameters:\n  1: 3\n")
    with pytest.raises(
        BridgeError,
        match=re.escape(
            f"The run config {path} has the key 1 (int) at parameters; keys must be text. "
            "Quote it: '1':"
        ),
    ):
        load_run_config(path)
    path = _config(tmp_path, "steps:\n  load:\n    true: 1\n")
    with pytest.raises(BridgeError, match=re.escape("has the key True (bool) at steps.load")):
        load_run_config(path)


def test_billion_laughs_run_yaml_fails_fast(tmp_path: Path) -> None:
    # 9 levels of 9 aliases each: 9**9 (387 million) strings once expanded, 2 KiB of text.
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = _config(tmp_path, "parameters:\n" + "".join(f"  {line}\n" for line in lines))
    with pytest.raises(
        BridgeError,
        match=re.escape(
            f"The run config {path} expands to more than {MAX_VALUES} values (YAML aliases count "
            "each time they are used)."
        ),
    ):
        load_run_config(path)


def test_deep_and_huge_run_yaml(tmp_path: Path) -> None:
    path = _config(tmp_path, "parameters:\n  rows: " + "[" * 1000 + "]" * 1000 + "\n")
    with pytest.raises(
        BridgeError, match=re.escape(f"The run config {path} nests lists or mappings more than")
    ):
        load_run_config(path)
    path = _config(tmp_path, '{"parameters": {"rows": ' + "[" * 1000 + "]" * 1000 + "}}")
    with pytest.raises(BridgeError, match="levels deep"):
        load_run_config(path)  # the JSON fast path too
    path = _config(tmp_path, "parameters:\n  rows: " + "9" * 5000 + "\n")
    with pytest.raises(BridgeError, match="more than 4300 digits"):
        load_run_config(path)
    path = tmp_path / "big.yaml"
    path.write_text("parameters:\n  blob: '" + "x" * (5 * 2**20) + "'\n", encoding="utf-8")
    with pytest.raises(BridgeError, match=re.escape(f"The run config {path} is larger than")):
        load_run_config(path)


def test_run_yaml_problems_through_the_cli_exit_2(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(home, "parameters:\n  rows: &a [*a]\n")
    code, _, err = _cli(capsys, "run", LINEAR, "--config", str(path))
    _assert_message(code, err, "holds a recursive alias")
    path = _config(home, "parameters:\n  7: 1\n")
    code, _, err = _cli(capsys, "run", LINEAR, "--config", str(path))
    _assert_message(code, err, "has the key 7 (int)")
    assert not (home / "artifacts").exists()


def test_limits_are_the_documented_ones() -> None:
    from zenml_bridge import config

    assert (config.MAX_DEPTH, config.MAX_VALUES) == (MAX_DEPTH, MAX_VALUES)


def test_ordinary_aliases_still_work(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        """
        parameters:
          rows: &n 3
          sizes: [*n, *n]
        steps:
          load: &fast {retries: 1}
          split: *fast
        """,
    )
    config = load_run_config(path)
    assert config.parameters == {"rows": 3, "sizes": [3, 3]}
    assert config.steps == {"load": {"retries": 1}, "split": {"retries": 1}}
