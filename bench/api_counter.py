"""Counts a process's HTTP requests through urllib3 (the kubernetes client's HTTP library).

The bench (`Workspace` in bench/runner.py) copies this file as `sitecustomize.py` into a directory
it puts on a measured job's PYTHONPATH, with RPS_BENCH_API_COUNTS naming the output file, so the
real CLI runs unchanged while every request it sends is counted by method and path (query string
dropped), and every reply body's bytes are added up. The counts are written as JSON when the process
exits. Without RPS_BENCH_API_COUNTS it does nothing.
"""

from __future__ import annotations

import atexit
import json
import os
from typing import Any

_OUTPUT = os.environ.get("RPS_BENCH_API_COUNTS")

if _OUTPUT:
    import urllib3.connectionpool
    import urllib3.response

    _requests: dict[str, int] = {}
    _reply_bytes = [0]
    _urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen
    _read = urllib3.response.HTTPResponse.read

    def _counted_urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        key = f"{method} {url.split('?', 1)[0]}"
        _requests[key] = _requests.get(key, 0) + 1
        return _urlopen(self, method, url, *args, **kwargs)

    def _counted_read(self: Any, *args: Any, **kwargs: Any) -> Any:
        data = _read(self, *args, **kwargs)
        if isinstance(data, bytes):
            _reply_bytes[0] += len(data)
        return data

    def _write() -> None:
        with open(str(_OUTPUT), "w", encoding="utf-8") as file:
            json.dump({"requests": _requests, "reply_bytes": _reply_bytes[0]}, file)

    urllib3.connectionpool.HTTPConnectionPool.urlopen = _counted_urlopen  # type: ignore[method-assign]
    urllib3.response.HTTPResponse.read = _counted_read  # type: ignore[method-assign]
    atexit.register(_write)
