"""Stack components and step settings reached through the step context (issue 12): flavors
from the plugin table (``zenml_bridge.flavors`` and the old tracker group), ``components:``
in the stack config, ``get_step_context().component(kind)`` and ``.settings(cls)``."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from zenml_bridge import plugins
from zenml_bridge.config import RunConfig
from zenml_bridge.errors import BridgeError
from zenml_bridge.runtime import run_pipeline
from zenml_bridge.settings import StepSettingsError

PLUGIN = textwrap.dedent(
    """
    from dataclasses import dataclass
    from typing import Literal

    from zenml_bridge import DataValidator, StepSettings, get_step_context, pipeline, step
    from zenml_bridge.runtime.tracking import ExperimentTracker


    class ThresholdValidator(DataValidator):
        flavor = "threshold"

        def check(self, share: float) -> bool:
            return share <= float(self.config.get("max_share", 0.5))


    class LaptopValidator(DataValidator):
        flavor = "laptop"
        local_only = True


    class OldStyleTracker(ExperimentTracker):
        flavor = "oldstyle"


    @dataclass(frozen=True)
    class GateSettings(StepSettings):
        key = "gate"
        mode: Literal["warn", "fail"] = "fail"
        max_rows: int = 10


    @step(settings={"gate": {"mode": "warn"}})
    def gate(share: float = 0.3) -> list:
        context = get_step_context()
        validator = context.component("data_validator")
        options = context.settings(GateSettings)
        return [type(validator).__name__, validator.check(share), options.mode, options.max_rows]


    @step
    def show_config() -> dict:
        return dict(get_step_context().component("data_validator").config)


    @pipeline
    def configured() -> None:
        show_config()


    @step
    def tracked() -> str:
        return type(get_step_context().component("experiment_tracker")).__name__


    @pipeline
    def gated(share: float = 0.3) -> None:
        gate(share=share)


    @pipeline
    def with_tracker() -> None:
        tracked()


    @step(settings={"gat": {"mode": "warn"}, "airflow": {"pool": "p"}})
    def typo() -> int:
        return 1


    @pipeline
    def misspelled() -> None:
        typo()


    @step(settings={"gate": {"mode": "loud", "max_rows": "ten", "maxrows": 3}})
    def wrong() -> int:
        return 1


    @pipeline
    def invalid() -> None:
        wrong()
    """
)


def install_flavors(site: Path) -> Path:
    """A real installed distribution (module + .dist-info) in ``site``, registering flavors
    in the new and the old group and a settings block."""
    dist = site / "zb_test_flavors-0.1.dist-info"
    dist.mkdir(parents=True)
    (site / "zb_test_flavors.py").write_text(PLUGIN)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zb-test-flavors\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[zenml_bridge.flavors]\n"
        "data_validator.threshold = zb_test_flavors:ThresholdValidator\n"
        "data_validator.laptop = zb_test_flavors:LaptopValidator\n"
        "[zenml_bridge.experiment_trackers]\n"
        "oldstyle = zb_test_flavors:OldStyleTracker\n"
        "[zenml_bridge.settings]\n"
        "gate = zb_test_flavors:GateSettings\n"
    )
    return site


@pytest.fixture
def flavors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = install_flavors(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_plugin_table_reads_new_and_old_groups(flavors: Path) -> None:
    names = plugins.plugin_names(plugins.FLAVORS)
    assert {"data_validator.threshold", "experiment_tracker.oldstyle"} <= set(names)
    found = plugins.find_plugin(plugins.FLAVORS, "experiment_tracker.oldstyle")
    assert found is not None and found.origin == "entry point (zb-test-flavors)"
    assert plugins.load_plugin(plugins.SETTINGS, "gate").key == "gate"
    with pytest.raises(BridgeError, match=re.escape("Did you mean 'data_validator.threshold'?")):
        plugins.load_plugin(plugins.FLAVORS, "data_validator.threshhold")


def test_step_reaches_component_and_settings(flavors: Path, stores_env: dict[str, str]) -> None:
    import zb_test_flavors

    config = RunConfig(components={"data_validator": {"flavor": "threshold", "max_share": 0.2}})
    run = run_pipeline(zb_test_flavors.gated, {"share": 0.3}, config=config)
    assert run.steps["gate"].outputs["output"].load() == ["ThresholdValidator", False, "warn", 10]


def test_old_group_tracker_is_an_experiment_tracker_component(
    flavors: Path, stores_env: dict[str, str]
) -> None:
    import zb_test_flavors

    config = RunConfig(components={"experiment_tracker": {"flavor": "oldstyle"}})
    run = run_pipeline(zb_test_flavors.with_tracker, config=config)
    assert run.steps["tracked"].outputs["output"].load() == "OldStyleTracker"


def test_missing_component_names_the_kind_and_the_fix(
    flavors: Path, stores_env: dict[str, str]
) -> None:
    import zb_test_flavors

    with pytest.raises(BridgeError) as caught:
        run_pipeline(zb_test_flavors.gated)
    message = str(caught.value)
    assert "The stack 'default' has no data_validator component" in message
    assert "components: {data_validator: {flavor: NAME, ...}}" in message


def test_unknown_flavor_of_a_kind(flavors: Path, stores_env: dict[str, str]) -> None:
    import zb_test_flavors

    config = RunConfig(components={"data_validator": {"flavor": "treshold"}})
    with pytest.raises(BridgeError, match=re.escape("Did you mean 'threshold'?")):
        run_pipeline(zb_test_flavors.gated, config=config)


def test_invalid_settings_stop_the_trace_naming_step_key_and_allowed_values(
    flavors: Path,
) -> None:
    import zb_test_flavors

    with pytest.raises(StepSettingsError) as caught:
        zb_test_flavors.invalid.to_ir()
    problems = caught.value.problems
    assert len(problems) == 3
    assert problems[0].startswith(
        "The settings 'gate' of step 'wrong' has no option 'maxrows'. Did you mean 'max_rows'?"
    )
    assert problems[1].startswith(
        "The settings 'gate' of step 'wrong': 'mode' is 'loud'; allowed: 'warn' or 'fail'."
    )
    assert problems[2].startswith(
        "The settings 'gate' of step 'wrong': 'max_rows' is 'ten'; allowed: a whole number."
    )
    assert "(pipeline 'invalid', " in problems[0]


def test_unknown_block_warns_on_run_and_fails_under_strict(
    flavors: Path, stores_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import zb_test_flavors

    run = run_pipeline(zb_test_flavors.misspelled)
    assert run.status == "completed"
    expected = (
        "warning: Step 'typo' has the settings block 'gat', which no installed integration "
        "declares, so nothing reads it. Did you mean 'gate'?"
    )
    assert expected in capsys.readouterr().err
    with pytest.raises(StepSettingsError, match=re.escape("Did you mean 'gate'?")):
        run_pipeline(zb_test_flavors.misspelled, strict=True)


def test_unknown_block_is_a_compile_warning_and_a_strict_error(
    flavors: Path, tmp_path: Path
) -> None:
    import zb_test_flavors

    from zenml_bridge.compilers import get_compiler
    from zenml_bridge.compilers.base import CompileOptions, UnsupportedError

    pipeline = zb_test_flavors.misspelled.to_ir()
    options = CompileOptions(out=tmp_path / "p.json")
    result = get_compiler("ir").compile(pipeline, options)
    assert [str(w).split(" Known")[0] for w in result.warnings] == [
        "warning: step 'typo', settings.gat: Step 'typo' has the settings block 'gat', which no "
        "installed integration declares, so nothing reads it. Did you mean 'gate'?"
    ]
    with pytest.raises(UnsupportedError, match=re.escape("settings.gat")):
        get_compiler("ir").compile(pipeline, CompileOptions(out=options.out, strict=True))


def test_stack_register_and_list_show_components(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from zenml_bridge.cli.main import main

    for key in ("ZENML_BRIDGE_METADATA_URL", "ZENML_BRIDGE_ARTIFACT_ROOT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ZENML_BRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    args = ["stack", "register", "team", "--experiment-tracker", "mlflow",
            "--component", "data_validator=threshold",
            "--component-option", "data_validator.max_share=0.2",
            "--component-option", "data_validator.api_token=${TEAM_TOKEN}"]  # fmt: skip
    assert main(args) == 0
    config = json.loads((tmp_path / ".zenml_bridge" / "config.yaml").read_text())
    assert config["stacks"]["team"]["components"] == {
        "data_validator": {"flavor": "threshold", "max_share": 0.2, "api_token": "${TEAM_TOKEN}"}
    }
    capsys.readouterr()
    assert main(["stack", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"team\s.*data_validator=threshold, experiment_tracker=mlflow", out)
    assert "COMPONENTS" in out.splitlines()[1]
    code = main(["stack", "register", "bad", "--component-option", "data_validator.x=1"])
    assert code == 2
    assert "names no component given with --component" in capsys.readouterr().err
