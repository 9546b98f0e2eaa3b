"""Source URLs: credentials in (only for FFmpeg), credentials out (for everything else).

``redact`` is what logs, metrics, errors and ``/readyz`` see: no user info, no query, no
fragment (tokens often ride in the query: ``?token=...``, signed HLS URLs)::

    rtsp://admin:hunter2@cam-7.local:554/stream1?channel=1   →   rtsp://cam-7.local:554/stream1

``with_credentials`` is the URL handed to ``av.open`` and nowhere else. FFmpeg's own log lines
may quote the URL it opens, so ingest keeps FFmpeg's logging off (``media.py``).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import SecretStr


def redact(url: str) -> str:
    """``url`` without user info, query or fragment; a plain path stays as it is."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url.split("?", 1)[0]
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def with_credentials(url: str, username: str | None, password: SecretStr | None) -> str:
    """``url`` with ``username:password@`` in it (percent-encoded); unchanged without them."""
    if username is None and password is None:
        return url
    parts = urlsplit(url)
    if not parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    userinfo = quote(username or "", safe="")
    if password is not None:
        userinfo += ":" + quote(password.get_secret_value(), safe="")
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, ""))


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` (an FFmpeg error message, say) with each non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
            encoded = quote(secret, safe="")
            if encoded != secret:
                text = text.replace(encoded, "***")
    return text
