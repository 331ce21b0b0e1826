"""The topowatch dashboard: a Dash app that talks to the API only over HTTP.

``create_app(api_url)`` builds the app; ``main(host, port, api_url)`` serves it.

Architecture
------------
* Routing: one ``dcc.Location`` (``url``) and a callback that renders ``frontend.pages.<page>.layout``.
* Same-origin proxy: ``/api/<path>`` on Dash's Flask server forwards to ``api_url`` (status codes and
  bodies pass through; ``text/event-stream`` is streamed). The browser only ever calls ``/api/...``.
* The heavy lifting is client-side (``frontend/assets/*.js``): frames are fetched in ranges into an
  in-browser cache and every figure is redrawn by clientside callbacks, so moving the timeline never
  costs a server round trip.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path
from urllib.parse import parse_qs

import dash
import requests
from dash import Input, Output, dcc, html
from dash.exceptions import PreventUpdate
from flask import Response, jsonify, request, stream_with_context
from requests.adapters import HTTPAdapter

from frontend.api_client import ApiClient
from frontend.components import register_shared
from frontend.pages import compare, home, new_run, run

ASSETS = Path(__file__).resolve().parent / "assets"
log = logging.getLogger("topowatch.ui")

# Response headers worth passing through the proxy (the body is re-sent decoded, so no
# content-encoding/length; hop-by-hop headers never).
_PASS_HEADERS = {"content-type", "location", "retry-after", "etag", "last-modified"}


def _install_proxy(server, api_url: str) -> None:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    base = api_url.rstrip("/")

    @server.route("/api/<path:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def api_proxy(path: str):  # noqa: ANN202 - flask view
        url = f"{base}/api/{path}"
        is_events = path.rstrip("/") == "events"
        headers = {"Accept": request.headers.get("Accept", "application/json")}
        if request.content_type:
            headers["Content-Type"] = request.content_type
        try:
            upstream = session.request(
                request.method,
                url,
                params=list(request.args.items(multi=True)),
                data=request.get_data() or None,
                headers=headers,
                stream=True,
                timeout=(3.05, None if is_events else 60),
            )
        except requests.RequestException as exc:
            resp = jsonify(detail=f"The topowatch API at {base} cannot be reached ({exc.__class__.__name__}).")
            resp.status_code = 502
            resp.headers["X-Topowatch-Proxy"] = "unreachable"
            resp.headers["Cache-Control"] = "no-store"
            return resp
        out_headers = [(k, v) for k, v in upstream.headers.items() if k.lower() in _PASS_HEADERS]
        out_headers.append(("Cache-Control", "no-store"))
        if "text/event-stream" in upstream.headers.get("content-type", ""):
            def relay():
                try:
                    for chunk in upstream.iter_content(chunk_size=None):
                        if chunk:
                            yield chunk
                finally:
                    upstream.close()

            out_headers.append(("X-Accel-Buffering", "no"))
            return Response(stream_with_context(relay()), status=upstream.status_code, headers=out_headers)
        try:
            body = upstream.content
        except requests.RequestException as exc:
            resp = jsonify(detail=f"The topowatch API at {base} broke off the answer ({exc.__class__.__name__}).")
            resp.status_code = 502
            resp.headers["X-Topowatch-Proxy"] = "unreachable"
            return resp
        finally:
            upstream.close()
        # Frames are ~65 kB of JSON each: compress for the browser when it asks (4-5x smaller).
        ctype = upstream.headers.get("content-type", "")
        if len(body) > 8192 and "json" in ctype and "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=4)
            out_headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        return Response(body, status=upstream.status_code, headers=out_headers)


def _query(search: str | None) -> dict[str, str]:
    q = parse_qs((search or "").lstrip("?"), keep_blank_values=True)
    return {k: v[-1] for k, v in q.items()}


def _not_found(pathname: str):
    return html.Div(
        [html.H2("Page not found"), html.P(["Nothing lives at ", html.Code(pathname), "."]),
         dcc.Link("Back to the runs", href="/", className="btn")],
        className="page page-empty card",
    )


def create_app(api_url: str) -> dash.Dash:
    """Build the dashboard for the API at ``api_url`` (e.g. ``http://127.0.0.1:8000``)."""
    api_url = api_url.rstrip("/")
    client = ApiClient(api_url)
    app = dash.Dash(
        __name__,
        # Dash would add its own stdout handler to its logger, and with the root logger configured
        # (`topowatch` sets up logging) "Dash is running on ..." came out twice: log through the root only.
        add_log_handler=False,
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True,
        title="topowatch",
        update_title=None,
        meta_tags=[
            {"name": "viewport", "content": "width=device-width, initial-scale=1"},
            {"name": "color-scheme", "content": "light dark"},
        ],
    )
    _install_proxy(app.server, api_url)

    app.layout = html.Div(
        [
            dcc.Location(id="url", refresh=False),
            html.Header(
                [
                    dcc.Link([html.Span("◎", className="brand-mark"), "topowatch"], href="/", className="brand"),
                    html.Nav(
                        [
                            dcc.Link("Runs", href="/", className="nav-link"),
                            dcc.Link("New run", href="/new", className="nav-link"),
                        ],
                        className="nav",
                    ),
                    html.Span(id="api-dot", className="api-dot", title="API status"),
                ],
                className="topbar",
            ),
            html.Div(
                [
                    html.Strong("The topowatch API cannot be reached. "),
                    html.Span(f"Tried {api_url} — retrying every 2 s; the page recovers by itself."),
                ],
                id="api-banner",
                className="api-banner hidden",
                role="alert",
            ),
            dcc.Interval(id="health-interval", interval=2000),
            dcc.Store(id="title-dummy"),
            html.Main(id="page-content", className="main"),
        ],
        className="app-root",
    )

    @app.callback(Output("page-content", "children"), Input("url", "pathname"), Input("url", "search"))
    def route(pathname, search):
        if pathname is None:
            raise PreventUpdate
        query = _query(search)
        parts = [p for p in pathname.split("/") if p]
        if not parts:
            return home.layout()
        if parts == ["new"]:
            return new_run.layout(query)
        if len(parts) == 2 and parts[0] == "runs":
            return run.layout(parts[1], query)
        if parts == ["compare"]:
            return compare.layout(query)
        return _not_found(pathname)

    app.clientside_callback(
        dash.ClientsideFunction("topowatch", "health"),
        Output("api-banner", "className"),
        Output("api-dot", "className"),
        Input("health-interval", "n_intervals"),
    )

    app.clientside_callback(
        dash.ClientsideFunction("topowatch", "page_title"),
        Output("title-dummy", "data"),
        Input("url", "pathname"),
    )

    register_shared(app)
    home.register(app, client)
    new_run.register(app, client)
    run.register(app, client)
    compare.register(app, client)
    return app


def main(host: str | None = None, port: int | None = None, api_url: str | None = None) -> None:
    """Serve the dashboard (``topowatch ui``). Defaults come from ``topowatch.settings``."""
    from topowatch.settings import get_settings

    settings = get_settings()
    host = host or settings.ui_host
    port = int(port or settings.ui_port)
    api_url = api_url or settings.api_url
    app = create_app(api_url)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    print(f"topowatch dashboard on http://{host}:{port}/ (API {api_url})", flush=True)
    app.run(host=host, port=port, debug=False, threaded=True)


if __name__ == "__main__":  # pragma: no cover
    import argparse

    parser = argparse.ArgumentParser(description="Serve the topowatch dashboard")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--api-url")
    args = parser.parse_args()
    main(args.host, args.port, args.api_url)
