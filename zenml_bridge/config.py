"""Where runs are recorded: project discovery, stacks, environment overrides, run configs.

``zenml-bridge init`` creates ``.zenml_bridge/`` (``config.yaml``, ``metadata.db``,
``artifacts/``). Commands find it by walking up from the working directory, like git. Without
one, the default location ``~/.zenml_bridge`` (or ``$ZENML_BRIDGE_HOME``) is used, and said once
when it is first created. Precedence, strongest first: the environment
(``ZENML_BRIDGE_METADATA_URL``, ``ZENML_BRIDGE_ARTIFACT_ROOT``), a run config, the active stack
of the project config, the default.

Example:
    >>> settings = load_settings()        # doctest: +SKIP
    >>> settings.metadata_url             # doctest: +SKIP
    'sqlite:////home/me/project/.zenml_bridge/metadata.db'
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zenml_bridge.errors import BridgeError, did_you_mean

DIR_NAME = ".zenml_bridge"
CONFIG_NAME = "config.yaml"
ENV_METADATA_URL = "ZENML_BRIDGE_METADATA_URL"
ENV_ARTIFACT_ROOT = "ZENML_BRIDGE_ARTIFACT_ROOT"
ENV_HOME = "ZENML_BRIDGE_HOME"
STACK_KEYS = ("metadata_url", "artifact_root", "experiment_tracker", "components")
STEP_KEYS = ("cache", "cache_salt", "retries", "retry_delay", "retry_backoff")
RUN_KEYS = ("pipeline", "parameters", "cache", "parallel", "stack", *STACK_KEYS, "steps")
#: key -> (accepted types, how the message names them). bool is refused where a number is
#: expected (True is an int to Python, never a count of retries to a user).
_TEXT = ((str,), "a string")
RUN_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "pipeline": _TEXT,
    "parameters": ((dict,), "a mapping of name: value"),
    "cache": ((bool,), "true or false"),
    "parallel": ((int,), "a whole number of 1 or more"),
    "stack": _TEXT,
    "metadata_url": _TEXT,
    "artifact_root": _TEXT,
    "experiment_tracker": ((dict,), "a mapping with a 'flavor' (e.g. {flavor: mlflow})"),
    "components": ((dict,), "a mapping of kind: {flavor: NAME, ...options}"),
    "steps": ((dict,), "a mapping of step name: settings"),
}
STEP_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "cache": ((bool,), "true or false"),
    "cache_salt": _TEXT,
    "retries": ((int,), "a whole number of 0 or more"),
    "retry_delay": ((int, float), "a number of seconds of 0 or more"),
    "retry_backoff": ((int, float), "a number of 1 or more"),
}
_MINIMUM = {"parallel": 1, "retries": 0, "retry_delay": 0, "retry_backoff": 1}
#: Limits of what config files, ``-p`` values and ``--params-json`` may hold. A run config is
#: a page of settings; these bounds stop hostile or broken input (a "billion laughs" YAML,
#: 1,000-deep nesting) with a message instead of minutes of work or a RecursionError.
MAX_TEXT_BYTES = 4 * 2**20
MAX_DEPTH = 64
MAX_VALUES = 100_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The stores a command uses, and where that choice came from."""

    metadata_url: str
    artifact_root: str
    experiment_tracker: Mapping[str, Any] | None = None
    #: kind -> ``{flavor: NAME, ...options}``; see :meth:`component_configs`.
    components: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    stack: str = "default"
    home: Path
    project: Path | None = None

    def component_configs(self) -> dict[str, dict[str, Any]]:
        """Every component block of the stack; ``experiment_tracker:`` counts as one."""
        found = {kind: dict(block) for kind, block in self.components.items()}
        if self.experiment_tracker:
            found["experiment_tracker"] = dict(self.experiment_tracker)
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """A declarative run (``zenml-bridge run --config run.yaml``), validated."""

    pipeline: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    cache: bool | None = None
    parallel: int | None = None
    stack: str | None = None
    metadata_url: str | None = None
    artifact_root: str | None = None
    experiment_tracker: Mapping[str, Any] | None = None
    components: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    steps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    path: str = "<run config>"


def find_project(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (the working directory) holding
    ``.zenml_bridge/config.yaml``."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / DIR_NAME / CONFIG_NAME).is_file():
            return candidate
    return None


def default_home() -> Path:
    return Path(os.environ.get(ENV_HOME) or Path.home() / DIR_NAME).expanduser()


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML (or JSON) file holding a mapping, within :data:`MAX_TEXT_BYTES`, :data:`MAX_DEPTH`
    and :data:`MAX_VALUES` (aliases counted as expanded); string keys only."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_TEXT_BYTES + 1)
    except OSError as exc:
        raise BridgeError(f"Cannot read the {what} {path} ({exc.strerror}).") from None
    if len(raw) > MAX_TEXT_BYTES:
        raise BridgeError(
            f"The {what} {path} is larger than {MAX_TEXT_BYTES >> 20} MiB; settings files are "
            "small. Keep data out of it (pass a path or URL as a parameter instead)."
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BridgeError(f"The {what} {path} is not UTF-8 text ({exc.reason}). Fix it.") from None
    where = f"{what} {path}"
    try:
        data = json.loads(text)  # our own files are JSON-compatible YAML: skip the yaml import
    except RecursionError:
        raise _too_deep(where) from None
    except ValueError:  # not JSON (or an integer beyond Python's digit limit): read as YAML
        data = _load_yaml(text, where)
    check_structure(data, where)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BridgeError(
            f"The {what} {path} must hold a mapping of keys, not {type(data).__name__}."
        )
    return data


def _load_yaml(text: str, where: str) -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that stops at :data:`MAX_DEPTH` while composing (its recursion)."""

        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise _too_deep(where)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    try:
        return yaml.load(text, Loader=Loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise BridgeError(f"The {where} is not valid YAML: {exc}. Fix it.") from None
    except RecursionError:
        raise _too_deep(where) from None
    except ValueError:  # an integer of more digits than Python converts
        raise BridgeError(
            f"The {where} holds a number of more than {_max_digits()} digits, more than Python "
            "reads. Quote it to pass it as text."
        ) from None


def _max_digits() -> int:
    return int(getattr(sys, "get_int_max_str_digits", lambda: 4300)())


def _too_deep(where: str) -> BridgeError:
    return BridgeError(
        f"The {where} nests lists or mappings more than {MAX_DEPTH} levels deep. Flatten it."
    )


def check_structure(value: Any, where: str) -> None:
    """Refuse data that is too deep, too big (aliases counted each time they are used), cyclic
    (a recursive YAML alias) or keyed by anything but strings (``1:`` or ``true:`` in YAML).

    Raises:
        BridgeError: naming ``where``, the key path, the problem and the fix.
    """
    count = 0
    open_ids: set[int] = set()

    def walk(item: Any, path: str, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_VALUES:
            raise BridgeError(
                f"The {where} expands to more than {MAX_VALUES} values (YAML aliases count each "
                "time they are used). Write the values out, or keep data out of it."
            )
        if not isinstance(item, dict | list | tuple):
            return
        if depth > MAX_DEPTH:
            raise _too_deep(where)
        if id(item) in open_ids:
            raise BridgeError(
                f"The {where} holds a recursive alias at {path or 'the top'} (a value that "
                "contains itself). Remove the alias or write the value out."
            )
        open_ids.add(id(item))
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise BridgeError(
                        f"The {where} has the key {key!r} ({type(key).__name__}) at "
                        f"{path or 'the top'}; keys must be text. Quote it: '{key}':"
                    )
                walk(child, f"{path}.{key}" if path else key, depth + 1)
        else:
            for index, child in enumerate(item):
                walk(child, f"{path}[{index}]", depth + 1)
        open_ids.discard(id(item))

    walk(value, "", 0)


def parse_json_value(text: str, what: str, *, text_fallback: bool = False) -> Any:
    """JSON ``text`` within the limits of :func:`check_structure`, for ``-p`` and
    ``--params-json``; with ``text_fallback``, text that is not JSON is returned as it is.

    Raises:
        BridgeError: invalid JSON (without ``text_fallback``), too long, too deep, too big, or a
            number of more digits than Python converts.

    Example:
        >>> parse_json_value("[1, 2]", "value of -p rows")
        [1, 2]
        >>> parse_json_value("abc", "value of -p name", text_fallback=True)
        'abc'
    """
    if len(text) > MAX_TEXT_BYTES:
        raise BridgeError(
            f"The {what} is longer than {MAX_TEXT_BYTES >> 20} MiB. Pass large data as a file path "
            "or URL, and read it inside a step."
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if text_fallback:
            return text
        raise BridgeError(f"The {what} is not valid JSON ({exc}). Fix it.") from None
    except RecursionError:
        raise _too_deep(what) from None
    except ValueError:  # int('9' * 5000): Python's integer string conversion limit
        raise BridgeError(
            f"The {what} holds a number of more than {_max_digits()} digits, more than Python "
            "reads. Pass it as a string (quoted: '\"123...\"') and convert it inside a step."
        ) from None
    check_structure(value, what)
    return value


def write_config(project: Path, config: Mapping[str, Any]) -> Path:
    """Write ``<project>/.zenml_bridge/config.yaml`` atomically.

    It is written as JSON, which is valid YAML and reads back without importing a YAML parser;
    a config the user rewrote in YAML style is read with PyYAML.
    """
    folder = project / DIR_NAME
    return write_config_file(folder, config)


def write_config_file(folder: Path, config: Mapping[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dict(config), indent=2) + "\n"
    path = folder / CONFIG_NAME
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".config.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temp, path)
    return path


def config_at(home: Path) -> dict[str, Any]:
    """The config in ``home`` (a project's ``.zenml_bridge`` or the default location)."""
    path = home / CONFIG_NAME
    if not path.is_file():
        return {"stacks": {}}
    config = read_yaml(path, "project config")
    unknown = sorted(set(config) - {"version", "active_stack", "stacks"})
    if unknown:
        raise BridgeError(
            f"The project config {path} has the unknown key '{unknown[0]}'."
            + did_you_mean(unknown[0], ("version", "active_stack", "stacks"))
            + " Known keys: version, active_stack, stacks."
        )
    stacks = config.setdefault("stacks", {}) or {}
    config["stacks"] = stacks
    for name, stack in stacks.items():
        check_keys(stack or {}, STACK_KEYS, f"stack '{name}' in {path}")
        check_types(stack or {}, RUN_TYPES, f"stack '{name}' in {path}")
        check_components((stack or {}).get("components"), f"stack '{name}' in {path}")
    return config


def check_components(components: Mapping[str, Any] | None, where: str) -> None:
    """Each component block is a mapping with a text ``flavor``; kinds are identifiers."""
    for kind, block in (components or {}).items():
        if not kind.isidentifier():
            raise BridgeError(
                f"The component kind '{kind}' in the {where} is not a name like "
                "'experiment_tracker'. Fix it in that file."
            )
        if not isinstance(block, Mapping) or not isinstance(block.get("flavor"), str):
            raise BridgeError(
                f"The component '{kind}' in the {where} must be a mapping with a 'flavor', "
                f"e.g. `{kind}: {{flavor: NAME, ...options}}`. Fix it in that file."
            )


def check_keys(data: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    if not isinstance(data, Mapping):
        raise BridgeError(f"The {where} must be a mapping of keys, not {type(data).__name__}.")
    for key in data:
        if key not in known:
            raise BridgeError(
                f"The {where} has the unknown key '{key}'."
                + did_you_mean(str(key), known)
                + f" Known keys: {', '.join(known)}."
            )


def check_types(
    data: Mapping[str, Any], types: Mapping[str, tuple[tuple[type, ...], str]], where: str
) -> None:
    """BridgeError naming ``where``, the key and the expected type for a mistyped value."""
    for key, value in data.items():
        if key not in types or value is None:
            continue
        accepted, expected = types[key]
        wrong = not isinstance(value, accepted) or (
            isinstance(value, bool) and bool not in accepted
        )
        if not wrong and key in _MINIMUM and not isinstance(value, bool):
            wrong = value < _MINIMUM[key]
        if wrong:
            raise BridgeError(
                f"'{key}' in the {where} must be {expected}, not {value!r} "
                f"({type(value).__name__}). Fix it in that file."
            )


_ANNOUNCED = False


def load_settings(
    run_config: RunConfig | None = None, stack: str | None = None, cwd: Path | None = None
) -> Settings:
    """The stores to use from the environment, ``run_config``, the project config or default."""
    project = find_project(cwd)
    home = project / DIR_NAME if project else default_home()
    config = config_at(home)
    stack_name = stack or (run_config.stack if run_config else None)
    stack_name = stack_name or config.get("active_stack") or "default"
    stacks = config["stacks"]
    if stack_name not in stacks and stack_name != "default":
        raise BridgeError(
            f"There is no stack '{stack_name}'."
            + did_you_mean(stack_name, stacks)
            + " List stacks with `zenml-bridge stack list`; add one with `zenml-bridge stack "
            "register NAME --metadata-url URL --artifact-root URL`."
        )
    chosen = dict(stacks.get(stack_name) or {})
    rc = run_config or RunConfig()

    def pick(env: str, run_value: str | None, key: str, default: str) -> tuple[str, Path]:
        """The value and the folder its relative paths are relative to."""
        if os.environ.get(env):
            return os.environ[env], Path.cwd()
        if run_value:
            return run_value, Path.cwd()
        if chosen.get(key):
            return str(chosen[key]), home
        _announce(project, home)
        return default, home

    metadata_url, base = pick(
        ENV_METADATA_URL, rc.metadata_url, "metadata_url", f"sqlite:///{home / 'metadata.db'}"
    )
    if metadata_url.startswith("sqlite:///"):
        database = metadata_url[len("sqlite:///") :]
        if database and database != ":memory:" and not os.path.isabs(database):
            metadata_url = f"sqlite:///{(base / database).resolve()}"
    artifact_root, base = pick(
        ENV_ARTIFACT_ROOT, rc.artifact_root, "artifact_root", str(home / "artifacts")
    )
    if "://" not in artifact_root and not os.path.isabs(artifact_root):
        artifact_root = str((base / artifact_root).resolve())
    # Strongest first: the run config's two spellings, then the stack's.
    stack_components = dict(chosen.get("components") or {})
    tracker = (
        rc.experiment_tracker
        or rc.components.get("experiment_tracker")
        or chosen.get("experiment_tracker")
        or stack_components.get("experiment_tracker")
    )
    components = {**stack_components, **dict(rc.components)}
    components.pop("experiment_tracker", None)
    return Settings(
        metadata_url=metadata_url,
        artifact_root=artifact_root,
        experiment_tracker=dict(tracker) if tracker else None,
        components={kind: dict(block) for kind, block in components.items()},
        stack=stack_name,
        home=home,
        project=project,
    )


def _announce(project: Path | None, home: Path) -> None:
    """Say once, when the default location is first created, where runs are recorded."""
    global _ANNOUNCED
    if project is not None or _ANNOUNCED or home.exists():
        return
    _ANNOUNCED = True
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # the stores report an unwritable location with a proper message
    print(
        f"zenml-bridge: no project found from {Path.cwd()} upwards; recording runs in the "
        f"default location {home} (run `zenml-bridge init` to keep them in your project).",
        file=sys.stderr,
    )


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a run config file; unknown keys are refused with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise BridgeError(f"The run config {path} does not exist. Check the path.")
    data = read_yaml(path, "run config")
    check_keys(data, RUN_KEYS, f"run config {path}")
    where = f"run config {path}"
    check_types(data, RUN_TYPES, where)
    parameters = data.get("parameters") or {}
    steps = data.get("steps") or {}
    for name, settings in steps.items():
        what = f"settings of step '{name}' in the {where}"
        check_keys(settings or {}, STEP_KEYS, what)
        check_types(settings or {}, STEP_TYPES, what)
    check_components(data.get("components"), where)
    tracker = data.get("experiment_tracker")
    if tracker is not None and not (isinstance(tracker, dict) and "flavor" in tracker):
        raise BridgeError(
            f"'experiment_tracker' in the {where} must be a mapping with a 'flavor' "
            "(e.g. {flavor: mlflow, tracking_uri: ...})."
        )
    return RunConfig(
        pipeline=data.get("pipeline"),
        parameters=parameters,
        cache=data.get("cache"),
        parallel=data.get("parallel"),
        stack=data.get("stack"),
        metadata_url=data.get("metadata_url"),
        artifact_root=data.get("artifact_root"),
        experiment_tracker=tracker,
        components=dict(data.get("components") or {}),
        steps={name: dict(settings or {}) for name, settings in steps.items()},
        path=str(path),
    )
