"""Keep secrets out of what zenml-bridge prints, logs and writes: one redaction for every URL.

Store URLs carry credentials in two places: the user info (``s3://key:secret@bucket``,
``postgresql://user:pw@host/db``) and the query (``?password=...``, ``?token=...``,
``?X-Amz-Signature=...``). :func:`redact_url` hides the password and the secret values;
:func:`redact_text` does the same for every URL inside a longer text (an error message, a
traceback); :func:`url_has_credentials` says whether a URL must be kept out of generated
files. This module imports nothing heavy: the CLI, the compilers, the stores and the runtime
all use it.

Example:
    >>> redact_url("s3://AKIA:wJalr@bucket/prefix?region=eu&token=abc")
    's3://AKIA:***@bucket/prefix?region=eu&token=***'
    >>> redact_text("Cannot read s3://AKIA:wJalr@bucket/x (denied)")
    'Cannot read s3://AKIA:***@bucket/x (denied)'
"""

from __future__ import annotations

import re

MASK = "***"
#: Query keys (lower case, ``-`` read as ``_``) whose values are secrets, and key endings that
#: mark one (``aws_secret_access_key``, ``x_amz_signature``, ``access_token``, ``sas_token``).
SECRET_KEYS = frozenset(
    {"password", "passwd", "pwd", "pass", "secret", "token", "key", "sig", "signature",
     "credential", "credentials", "auth", "authorization", "apikey", "api_key", "sas",
     "client_secret", "access_key", "secret_key", "session_token", "security_token"}
)  # fmt: skip
SECRET_SUFFIXES = ("_password", "_secret", "_token", "_key", "_signature", "_credential")

#: A URL inside text: ``scheme://`` then everything up to white space or a closing quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_QUERY_PAIR = re.compile(r"(?P<sep>[?&;])(?P<key>[^=&;#]*)=(?P<value>[^&;#]*)")


def is_secret_key(key: str) -> bool:
    """Whether a query or option key names a secret (``password``, ``aws_secret_access_key``)."""
    normal = key.strip().lower().replace("-", "_")
    return normal in SECRET_KEYS or normal.endswith(SECRET_SUFFIXES)


def _split(url: str) -> tuple[str, str, str, str] | None:
    """``(scheme://, user info with its '@' or '', host and path, ?query#fragment)``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None
    end = min([i for i in (rest.find("?"), rest.find("#")) if i != -1] or [len(rest)])
    before, tail = rest[:end], rest[end:]
    slash, colon = before.find("/"), before.find(":")
    authority_end = len(before) if slash == -1 else slash
    at = before.rfind("@", 0, authority_end)  # a password may hold an unescaped '@'
    if at == -1 and colon != -1 and colon < authority_end:
        # An unescaped '/' in the password (common in AWS secret keys) ends the authority
        # early for a parser; for redaction, user:pass/word@host still counts as user info.
        at = before.find("@", authority_end)
    userinfo, body = (before[: at + 1], before[at + 1 :]) if at != -1 else ("", before)
    return f"{scheme}://", userinfo, body, tail


def redact_url(url: str) -> str:
    """``url`` with its user info and secret query values replaced by ``***``.

    A URL without secrets comes back unchanged (paths, hosts and ordinary options stay
    readable); text that is not a URL comes back unchanged too.
    """
    parts = _split(url)
    if parts is None:
        return url
    head, userinfo, body, query = parts
    if userinfo:
        # user:password -> user:*** (the user name helps to tell stores apart; a lone user, as
        # in postgresql://zb@host/db with trust or IAM auth, is no secret).
        user, colon, _password = userinfo[:-1].partition(":")
        userinfo = f"{user}:{MASK}@" if colon else f"{user}@"
    return head + userinfo + body + _redact_query(query)


def _redact_query(query: str) -> str:
    if not query:
        return query

    def hide(match: re.Match[str]) -> str:
        if not is_secret_key(match["key"]):
            return match.group(0)
        return f"{match['sep']}{match['key']}={MASK}"

    return _QUERY_PAIR.sub(hide, query)


def redact_text(text: object) -> str:
    """``str(text)`` with every URL in it redacted (for error messages, tracebacks, logs)."""
    value = str(text)
    if "://" not in value:
        return value  # the common case: nothing to scan
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), value)


def url_has_credentials(url: str) -> bool:
    """Whether ``url`` carries credentials (user info or a secret query value)."""
    return redact_url(url) != url
