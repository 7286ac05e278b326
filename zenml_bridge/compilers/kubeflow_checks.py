"""What a Kubernetes cluster refuses, checked at compile time for the Kubeflow target.

Each function returns a short reason (or None when the value is valid), so that the compiler
can report every problem of a compile together, naming the step and the setting. The rules
are Kubernetes' own (``k8s.io/apimachinery/pkg/util/validation``: qualified names, label
values, DNS subdomains, environment variable names), the distribution reference grammar of
container images (``github.com/distribution/reference``) and the cron grammar of KFP's
recurring runs (``robfig/cron`` with a seconds field).

Example:
    >>> image_problem("ghcr.io/me/zb:0.1") is None, image_problem("Me/ZB") is None
    (True, False)
"""

from __future__ import annotations

import re

PULL_POLICIES = ("Always", "IfNotPresent", "Never")

_ALNUM = "[A-Za-z0-9]"
_NAME = re.compile(rf"({_ALNUM}[-A-Za-z0-9_.]*)?{_ALNUM}")
_DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")

# distribution/reference: [domain[:port]/]path[:tag][@digest]; path components lowercase.
_HOST_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?"
)


def image_problem(image: str) -> str | None:
    """Why ``image`` is not a pullable image reference, or None."""
    match = _IMAGE.fullmatch(image) if isinstance(image, str) else None
    if match is None or len(match["path"]) > 255:
        return (
            f"{image!r} is not a container image reference (like 'ghcr.io/org/name:tag'): "
            "lowercase repository path, optional registry host, tag and @sha256 digest"
        )
    return None


def qualified_name_problem(key: str) -> str | None:
    """Why ``key`` is not a label / annotation key (``[prefix/]name``), or None."""
    if not isinstance(key, str):
        return f"{key!r} is not a string"
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return f"key {key!r}: the prefix must be a lowercase DNS subdomain (like 'example.com')"
    if not name or len(name) > 63 or not _NAME.fullmatch(name):
        return (
            f"key {key!r}: the name must be 1-63 characters of letters, digits, '-', '_' or "
            "'.', starting and ending with a letter or digit"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a label value, or None (empty is allowed)."""
    if value == "" or (len(value) <= 63 and _NAME.fullmatch(value)):
        return None
    return (
        f"value {value!r}: a label value is at most 63 letters, digits, '-', '_' or '.', "
        "starting and ending with a letter or digit"
    )


def dns_subdomain_problem(name: str, what: str) -> str | None:
    """Why ``name`` is not a Kubernetes object name (a Secret's), or None."""
    if isinstance(name, str) and len(name) <= 253 and _DNS_SUBDOMAIN.fullmatch(name):
        return None
    return (
        f"{what} {name!r} is not a Kubernetes name: lowercase letters, digits, '-' and '.', "
        "starting and ending with a letter or digit, at most 253 characters"
    )


def env_name_problem(name: str) -> str | None:
    """Why ``name`` is not an environment variable name Kubernetes accepts, or None."""
    if isinstance(name, str) and _ENV_NAME.fullmatch(name):
        return None
    return f"{name!r} is not an environment variable name (letters, digits, '_', '-', '.')"


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` is not a key of a Secret's data, or None."""
    if isinstance(key, str) and len(key) <= 253 and _SECRET_KEY.fullmatch(key):
        return None
    return f"Secret key {key!r} must be letters, digits, '-', '_' or '.'"


# -- cron -----------------------------------------------------------------------------------

_MONTHS = tuple("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())
_DAYS = tuple("SUN MON TUE WED THU FRI SAT".split())
#: (name, lowest, highest, names) of the five standard fields, in order.
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        return int(text)
    upper = text.upper()
    return names.index(upper) + low if upper in names else None


def cron_problem(cron: str) -> str | None:
    """Why a five-field cron is not one KFP's scheduler (robfig/cron) parses, or None.

    Example:
        >>> cron_problem("0 6 * * 1-5") is None, cron_problem("0 25 * * *")
        (True, "hour field '25': 25 is outside 0-23")
    """
    fields = cron.split()
    if len(fields) != 5:
        return f"{cron!r} has {len(fields)} fields; a cron has five (minute hour day month weekday)"
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.split(","):
            span, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                return f"{name} field {text!r}: the step after '/' must be a positive number"
            if span in ("*", "?"):
                if span == "?" and name not in ("day of month", "day of week"):
                    return f"{name} field {text!r}: '?' is only allowed for days"
                continue
            bounds = span.split("-")
            if len(bounds) > 2 or not all(bounds):
                return f"{name} field {text!r}: expected a number, a range a-b, '*' or a list"
            values = [_cron_value(b, low, names) for b in bounds]
            for bound, value in zip(bounds, values, strict=True):
                if value is None:
                    return f"{name} field {text!r}: {bound!r} is not a number"
                if not low <= value <= high:
                    return f"{name} field {text!r}: {value} is outside {low}-{high}"
            if len(values) == 2 and (values[0] or 0) > (values[1] or 0):
                return f"{name} field {text!r}: the range {span} runs backwards"
    return None
