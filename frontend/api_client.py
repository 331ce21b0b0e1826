"""Thin, typed-enough wrapper around the topowatch HTTP API (see docs/api.md).

The dashboard's Python callbacks use it (the new-run form); the browser itself talks to the
API through the same-origin proxy in :mod:`frontend.app`. Every call has a timeout and raises one
of two clear errors: :class:`ApiUnavailable` (cannot connect / timed out / 5xx) or :class:`ApiError`
(the API answered 4xx; ``detail`` holds its ``{"detail": ...}`` body).
"""

from __future__ import annotations

from typing import Any

import requests

DEFAULT_TIMEOUT = (3.05, 20.0)  # (connect, read) seconds


class ApiUnavailable(RuntimeError):
    """The API could not be reached (connection refused, timeout, 5xx)."""


class ApiError(RuntimeError):
    """The API answered with a client error (4xx)."""

    def __init__(self, status: int, detail: Any):
        self.status = status
        self.detail = detail
        super().__init__(f"API answered {status}: {format_detail(detail)}")

    def field_errors(self) -> dict[str, str]:
        """Validation messages by field name, from a FastAPI-style 422 body."""
        out: dict[str, str] = {}
        if isinstance(self.detail, list):
            for item in self.detail:
                if not isinstance(item, dict):
                    continue
                loc = [p for p in item.get("loc") or [] if p not in ("body", "query", "path")]
                name = str(loc[-1]) if loc else "__all__"
                msg = str(item.get("msg", "invalid value"))
                # pydantic prefixes custom messages with "Value error, "; the form does not need it
                if msg.startswith("Value error, "):
                    msg = msg[len("Value error, "):]
                out[name] = f"{out[name]}; {msg}" if name in out else msg
        elif self.detail is not None:
            out["__all__"] = format_detail(self.detail)
        return out


def format_detail(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or [] if p != "body")
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


class ApiClient:
    def __init__(self, base_url: str, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    # -- plumbing -------------------------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                timeout: float | tuple[float, float] | None = None) -> Any:
        url = f"{self.base_url}/{path.lstrip('/')}"
        try:
            resp = self.session.request(method, url, json=json, params=params, timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            raise ApiUnavailable(f"cannot reach the topowatch API at {self.base_url}: {exc.__class__.__name__}") from exc
        if resp.status_code >= 500:
            raise ApiUnavailable(f"the topowatch API failed ({resp.status_code}): {resp.text[:300]}")
        try:
            body = resp.json() if resp.content else None
        except ValueError:
            body = resp.text
        if resp.status_code >= 400:
            detail = body.get("detail", body) if isinstance(body, dict) else body
            raise ApiError(resp.status_code, detail)
        return body

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, json=json if json is not None else {}, **kw)

    # -- endpoints ------------------------------------------------------------------------
    def health(self) -> dict:
        return self.get("/api/health", timeout=(1.5, 3.0))

    def presets(self) -> list[dict]:
        return self.get("/api/presets")

    def fields(self) -> list[dict]:
        return self.get("/api/fields")

    def runs(self) -> list[dict]:
        return self.get("/api/runs")

    def run(self, run_id: str) -> dict:
        return self.get(f"/api/runs/{run_id}")

    def create_run(self, config: dict) -> dict:
        return self.post("/api/runs", config)

    def check_run(self, config: dict) -> dict:
        return self.post("/api/runs/check", config)

    def create_pair(self, config: dict) -> dict:
        return self.post("/api/runs/pair", config)

    def stop_run(self, run_id: str) -> dict:
        return self.post(f"/api/runs/{run_id}/stop")

    def frames_index(self, run_id: str) -> dict:
        return self.get(f"/api/runs/{run_id}/frames")

    def frames(self, run_id: str, start: int | None = None, end: int | None = None, limit: int = 100) -> dict:
        params: dict[str, Any] = {"include": "full", "limit": limit}
        if start is not None:
            params["start"] = start
        if end is not None:
            params["end"] = end
        return self.get(f"/api/runs/{run_id}/frames", params=params)
