"""Issue 9, item 14: credentials in store URLs never reach generated files or printed output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zenml_bridge import BridgeError
from zenml_bridge.cli.main import main

GOLDEN = Path(__file__).parents[1] / "golden" / "pipelines"
LINEAR = f"{GOLDEN / 'linear.py'}:linear"
SECRET = "s3cr3t-Pw"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("s3://AKIAX:s3cr3t-Pw@bucket/zb", "s3://AKIAX:***@bucket/zb"),
        # AWS secret keys hold '/': still user info, never a path.
        ("s3://AKIAX:s3cr3t/-Pw@bucket/zb", "s3://AKIAX:***@bucket/zb"),
        ("memory://user:s3cr3t-Pw@bucket/zb", "memory://user:***@bucket/zb"),
        ("postgresql://ops:s3cr3t-Pw@db:5432/zb", "postgresql://ops:***@db:5432/zb"),
        (
            "mysql+pymysql://root@127.0.0.1/test?charset=utf8&password=s3cr3t-Pw",
            "mysql+pymysql://root@127.0.0.1/test?charset=utf8&password=***",
        ),
        (
            "https://host/zb?X-Amz-Signature=s3cr3t-Pw&X-Amz-Date=1&sas_token=s3cr3t-Pw",
            "https://host/zb?X-Amz-Signature=***&X-Amz-Date=1&sas_token=***",
        ),
        ("gs://bucket/zb?access_token=s3cr3t-Pw#x", "gs://bucket/zb?access_token=***#x"),
        # Nothing secret: unchanged.
        ("postgresql://zb@db/zb", "postgresql://zb@db/zb"),
        ("s3://bucket/runs@v2/zb", "s3://bucket/runs@v2/zb"),
        ("sqlite:////tmp/metadata.db", "sqlite:////tmp/metadata.db"),
        ("/data/zb/artifacts", "/data/zb/artifacts"),
    ],
)
def test_one_redaction_for_every_url(url: str, shown: str) -> None:
    from zenml_bridge.redact import redact_text, redact_url, url_has_credentials
    from zenml_bridge.stores.connect import describe_url

    assert redact_url(url) == shown
    assert describe_url(url) == shown  # the stores' name for it is the same function
    assert url_has_credentials(url) is (shown != url)
    assert redact_text(f"Cannot read '{url}' (denied)") == f"Cannot read '{shown}' (denied)"


def _options(tmp_path: Path, **urls: str):  # type: ignore[no-untyped-def]
    from zenml_bridge.compilers.base import CompileOptions

    return CompileOptions(out=tmp_path / "out", **urls)


@pytest.mark.parametrize("attribute", ["ir_uri", "code_archive_uri"])
def test_published_uris_under_a_root_with_credentials_are_refused(
    tmp_path: Path, attribute: str
) -> None:
    from zenml_bridge.compilers.base import check_no_secrets_in_urls

    uri = f"s3://AKIAX:{SECRET}@bucket/zb/.zenml_bridge/ir/{'0' * 64}.json"
    with pytest.raises(
        BridgeError,
        match=re.escape(
            "The artifact root s3://AKIAX:***@bucket/zb contains credentials, and the generated "
            "file would show them to anyone who can read it"
        ),
    ) as caught:
        check_no_secrets_in_urls(_options(tmp_path, **{attribute: uri}))
    assert SECRET not in str(caught.value)
    assert "AWS_SECRET_ACCESS_KEY" in str(caught.value) and "Kubernetes Secret" in str(caught.value)


def test_step_env_with_a_credential_url_is_refused(tmp_path: Path) -> None:
    import dataclasses

    from zenml_bridge.cli.source import load_pipeline
    from zenml_bridge.compilers.base import check_no_secrets_in_urls

    pipeline = load_pipeline(LINEAR).to_ir()
    load = dataclasses.replace(pipeline.steps[0], env={"DB": f"postgresql://u:{SECRET}@db/x"})
    pipeline = dataclasses.replace(pipeline, steps=(load, *pipeline.steps[1:]))
    with pytest.raises(
        BridgeError,
        match=re.escape(
            "Step 'load' env DB holds a URL with credentials (postgresql://u:***@db/x)"
        ),
    ):
        check_no_secrets_in_urls(_options(tmp_path), pipeline)


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("ZENML_BRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZENML_BRIDGE_METADATA_URL", f"sqlite:///{tmp_path / 'metadata.db'}")
    monkeypatch.chdir(work)
    return tmp_path


@pytest.mark.parametrize("root", [f"memory://user:{SECRET}@bucket/zb", f"s3://AKIAX:{SECRET}@b/zb"])
def test_compile_for_airflow_refuses_an_artifact_root_with_credentials(
    stores: Path,
    root: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ZENML_BRIDGE_ARTIFACT_ROOT", root)
    dags = stores / "dags"
    code = main(["compile", LINEAR, "--target", "airflow", "--out", str(dags)])
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert "Traceback" not in err and SECRET not in out + err
    assert "contains credentials" in err and "ZENML_BRIDGE_ARTIFACT_ROOT" in err
    # Refused before anything was published or written.
    assert not dags.exists() or not any(dags.iterdir())


def test_stack_list_hides_query_passwords_and_artifact_root_credentials(
    stores: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "stack",
            "register",
            "team",
            "--metadata-url",
            f"postgresql://zb@db.internal/zb?password={SECRET}",
            "--artifact-root",
            f"s3://AKIAX:{SECRET}@bucket/zb",
        ]
    )
    assert code == 0
    capsys.readouterr()
    assert main(["stack", "list"]) == 0
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    assert "postgresql://zb@db.internal/zb?password=***" in out
    assert "s3://AKIAX:***@bucket/zb" in out
