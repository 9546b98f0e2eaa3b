"""Plain HTTP requests to the services' own servers in tests (status codes, bearer tokens)."""

from __future__ import annotations

import urllib.error
import urllib.request


def http_status(port: int, path: str, token: str | None = None) -> int:
    """The status of ``GET http://127.0.0.1:<port><path>``, with a bearer ``token`` if given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code
