"""Run page `/runs/<id>?step=<k>`: neuron cloud, barcode, diagram and metric curves, one timeline.

Everything that changes with the timeline is drawn by clientside callbacks
(``frontend/assets/*.js``) from frames cached in the browser.
"""

from __future__ import annotations

from dash import ClientsideFunction, Input, Output, State, dcc, html

from frontend.components import SLIDER_EXTRA, card, graph, sid, stores, timeline_bar

# Metric panels, in display order (JS knows the same names: curve-<name>, curve-box-<name>).
CURVES = ["loss", "kemp", "eta", "sharpness", "betti", "bottleneck", "ratio", "knn", "merges", "accuracy"]
CURVE_HEIGHT = 250
KNN_KS = [5, 10, 20]  # neighbourhood preservation: frames carry k = 10, the API recomputes the others


def _int(v, default=None):
    try:
        return int(float(v))
    except (TypeError, ValueError, OverflowError):
        return default


def _frac(v, lo: float, hi: float, default: float) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return default
    return round(min(hi, max(lo, x)), 4) if x == x else default


def meta_from_query(run_id: str, query: dict[str, str]) -> dict:
    step = _int(query.get("step"))
    return {
        "kind": "run",
        "run_id": run_id,
        "init_pos": step,
        "live": step is None,
        "proj": query.get("proj"),
        "color": query.get("color") or "hue",
        "dim3": query.get("dim") == "3",
        "diag": query.get("diag") or "raw",
        "log": query.get("log", "1") != "0",
        "band": query.get("band") == "1",
        "betti": query.get("betti") or "scale",
        # Betti numbers at a chosen scale (fraction of the diameter), standardised coords, persistent bar length
        "bscale": _frac(query.get("bscale"), 0.05, 0.5, 0.25),
        "bstd": query.get("bstd") == "1",
        "bmin": _frac(query.get("bmin"), 0.0, 1.0, 0.1),
        "knn_k": _int(query.get("k"), 10) if _int(query.get("k"), 10) in KNN_KS else 10,
    }


def layout(run_id: str, query: dict[str, str]) -> html.Div:
    meta = meta_from_query(run_id, query)
    header = html.Div(
        [
            html.Div(
                [
                    html.Div(
                        [
                            html.H1(id="run-title", children=f"Run {run_id}"),
                            html.Span("loading", id="status-badge", className="badge badge-unknown"),
                        ],
                        className="run-title-row",
                    ),
                    # Still in the topology-preserving phase (lr * K_emp < 1), or when it left it.
                    html.Div(id="phase-indicator", className="phase-indicator phase-pending", role="status",
                             **{"aria-live": "polite"}),
                    html.Div(id="run-facts", className="run-facts"),
                    html.Div(id="run-error", className="run-error"),
                ],
                className="run-head-main",
            ),
            html.Div(
                [
                    dcc.Link("Compare with…", href=f"/?select={run_id}", id="run-compare-link", className="btn ghost",
                             title="Pick other runs to compare this one with"),
                    html.Button("■ Stop", id="stop-button", className="btn danger", disabled=True, n_clicks=0),
                ],
                className="page-actions",
            ),
        ],
        className="run-head card",
    )

    cloud_tools = [
        dcc.RadioItems(id="proj-select", options=[{"label": "raw", "value": "raw"}], value=meta["proj"] or None,
                       inline=True, className="segmented small"),
        dcc.RadioItems(id="color-select",
                       options=[{"label": "step-0 position", "value": "hue"},
                                {"label": "kNN preservation", "value": "knn"}],
                       value=meta["color"], inline=True, className="segmented small"),
        dcc.Checklist(id="dim-toggle", options=[{"label": "3-D", "value": "3d", "disabled": True}],
                      value=["3d"] if meta["dim3"] else [], inline=True, className="segmented small"),
    ]
    diag_tools = [
        dcc.RadioItems(id="diag-source",
                       options=[{"label": "raw coords", "value": "raw"},
                                {"label": "standardised", "value": "std", "disabled": True}],
                       value=meta["diag"], inline=True, className="segmented small"),
    ]
    curve_tools = [
        dcc.Checklist(id="loss-log", options=[{"label": "log loss", "value": "log"}],
                      value=["log"] if meta["log"] else [], inline=True, className="segmented small"),
        dcc.Checklist(id="ratio-band", options=[{"label": "1 ± ηλ band", "value": "band"}],
                      value=["band"] if meta["band"] else [], inline=True, className="segmented small"),
    ]
    # Controls inside two metric panels (below their graph).
    panel_tools = {
        "betti": [
            html.Div(
                [
                    dcc.RadioItems(id="betti-mode",
                                   options=[{"label": "Betti at scale", "value": "scale"},
                                            {"label": "persistent bars", "value": "persistent"}],
                                   value=meta["betti"], inline=True, className="segmented small"),
                    dcc.Checklist(id="betti-std", options=[{"label": "standardised", "value": "std"}],
                                  value=["std"] if meta["bstd"] else [], inline=True, className="segmented small"),
                    html.Label(
                        [html.Span("bars >", className="tool-label"),
                         dcc.Input(id="betti-minlen", type="number", min=0, max=1, step="any", value=meta["bmin"],
                                   debounce=True, className="input tool-input", inputMode="decimal"),
                         html.Span("× diam", className="tool-label")],
                        className="tool-group", title="persistent features: bars longer than this fraction of the diameter",
                    ),
                ],
                className="curve-tools",
            ),
            html.Div(
                [
                    html.Span("scale", className="tool-label"),
                    html.Div(dcc.Slider(id="betti-scale", min=0.05, max=0.5, step=0.01, value=meta["bscale"],
                                        marks={0.05: "0.05", 0.25: "0.25", 0.5: "0.5"}, updatemode="mouseup",
                                        **SLIDER_EXTRA),
                             className="betti-slider", title="Betti scale: a fraction of each frame's diameter"),
                    html.Span(id="betti-scale-label", className="tool-value"),
                ],
                className="curve-tools",
            ),
            html.Div(id="betti-rule", className="caption rule"),
            dcc.Store(id="betti-store", data={"key": "default"}),
        ],
        "knn": [
            html.Div(
                [
                    html.Span("k nearest", className="tool-label"),
                    dcc.RadioItems(id="knn-k", options=[{"label": str(k), "value": k} for k in KNN_KS],
                                   value=meta["knn_k"], inline=True, className="segmented small"),
                    html.Span(id="knn-note", className="tool-label"),
                ],
                className="curve-tools",
            ),
            dcc.Store(id="knn-store", data={"key": "k10"}),
        ],
    }

    main = html.Div(
        [
            card("Neuron cloud", [graph("cloud-graph", 560, "graph cloud"),
                                  html.Div(id="cloud-caption", className="caption")],
                 tools=cloud_tools, className="cloud-card"),
            html.Div(
                [
                    card("Persistence", [graph("barcode-graph", 300), graph("diagram-graph", 290),
                                         html.Div(id="persistence-caption", className="caption")],
                         tools=diag_tools, className="persistence-card"),
                ],
                className="side-col",
            ),
        ],
        className="run-grid",
    )

    curves = html.Div(
        [
            html.Div([html.H2("Metrics"), html.Div(curve_tools, className="card-tools")], className="section-head"),
            html.Div(id="metrics-readout", className="readout", title="Values at the cursor"),
            html.Div(
                [html.Div([graph(f"curve-{name}", CURVE_HEIGHT), *panel_tools.get(name, [])], id=f"curve-box-{name}",
                          className="card curve-card", style={"display": "none"} if name == "accuracy" else {})
                 for name in CURVES],
                className="curves-grid",
            ),
        ],
        className="curves-section",
    )

    return html.Div(
        [header, timeline_bar(), main, curves, *stores(meta, "run")],
        id="page-run",
        className="page page-run",
    )


def register(app, client) -> None:  # noqa: ARG001 - uniform page API
    app.clientside_callback(
        ClientsideFunction("topowatch", "run_status"),
        Output("status-badge", "children"),
        Output("status-badge", "className"),
        Output("run-error", "children"),
        Output("stop-button", "disabled"),
        Output("run-title", "children"),
        Output("run-facts", "children"),
        Output("proj-select", "options"),
        Output("proj-select", "value"),
        Output("page-run", "className"),
        Input(sid("run", "run"), "data"),
        State("proj-select", "value"),
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "run_render"),
        Output("cloud-graph", "figure"),
        Output("barcode-graph", "figure"),
        Output("diagram-graph", "figure"),
        Output("cloud-caption", "children"),
        Output("persistence-caption", "children"),
        Output("diag-source", "options"),
        Output("current-step", "children"),
        Output("current-step-extra", "children"),
        Output("dim-toggle", "options"),
        Output("dim-toggle", "value"),
        Input(sid("cursor", "run"), "data"),
        Input(sid("tick", "run"), "data"),
        Input("proj-select", "value"),
        Input("color-select", "value"),
        Input("dim-toggle", "value"),
        Input("diag-source", "value"),
        Input("knn-k", "value"),
        Input("betti-scale", "value"),
        Input(sid("run", "run"), "data"),
        State(sid("meta", "run"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "run_curves"),
        [*[Output(f"curve-{name}", "figure") for name in CURVES],
         *[Output(f"curve-box-{name}", "style") for name in CURVES]],
        Input(sid("version", "run"), "data"),
        Input(sid("tick", "run"), "data"),
        Input(sid("run", "run"), "data"),
        Input("loss-log", "value"),
        Input("ratio-band", "value"),
        Input("betti-mode", "value"),
        Input("betti-store", "data"),
        Input("knn-store", "data"),
        State(sid("meta", "run"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "run_betti"),
        Output("betti-store", "data"),
        Output("betti-rule", "children"),
        Output("betti-scale-label", "children"),
        Output("betti-std", "options"),
        Input("betti-scale", "value"),
        Input("betti-std", "value"),
        Input("betti-minlen", "value"),
        Input(sid("version", "run"), "data"),
        Input(sid("run", "run"), "data"),
        State(sid("meta", "run"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "run_knn"),
        Output("knn-store", "data"),
        Output("knn-note", "children"),
        Input("knn-k", "value"),
        Input(sid("version", "run"), "data"),
        Input(sid("run", "run"), "data"),
        State(sid("meta", "run"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "run_cursor"),
        Output("metrics-readout", "children"),
        Input(sid("cursor", "run"), "data"),
        Input(sid("version", "run"), "data"),
        Input("betti-store", "data"),
        Input("knn-store", "data"),
        State(sid("meta", "run"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "run_phase"),
        Output("phase-indicator", "children"),
        Output("phase-indicator", "className"),
        Output("phase-indicator", "title"),
        Input(sid("version", "run"), "data"),
        Input(sid("run", "run"), "data"),
        State(sid("meta", "run"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "run_stop"),
        Output(sid("run", "run"), "data", allow_duplicate=True),
        Input("stop-button", "n_clicks"),
        State(sid("meta", "run"), "data"),
        prevent_initial_call=True,
    )
