"""Run page `/runs/<id>?step=<k>`: neuron cloud, barcode, diagram and metric curves, one timeline.

Everything that changes with the timeline is drawn by clientside callbacks
(``frontend/assets/*.js``) from frames cached in the browser.
"""

from __future__ import annotations

from dash import ClientsideFunction, Input, Output, State, dcc, html

from frontend.components import card, graph, sid, stores, timeline_bar

# Metric panels, in display order (JS knows the same names: curve-<name>, curve-box-<name>).
CURVES = ["loss", "kemp", "eta", "sharpness", "betti", "bottleneck", "ratio", "knn", "merges", "accuracy"]
CURVE_HEIGHT = 250


def _int(v, default=None):
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return default


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
        dcc.RadioItems(id="betti-mode",
                       options=[{"label": "Betti @ 0.25·diam", "value": "scale"},
                                {"label": "persistent bars", "value": "persistent"}],
                       value=meta["betti"], inline=True, className="segmented small"),
    ]

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
                [html.Div(graph(f"curve-{name}", CURVE_HEIGHT), id=f"curve-box-{name}", className="card curve-card",
                          style={"display": "none"} if name == "accuracy" else {})
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
        Output("dim-toggle", "options"),
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
        Input(sid("cursor", "run"), "data"),
        Input(sid("tick", "run"), "data"),
        Input("proj-select", "value"),
        Input("color-select", "value"),
        Input("dim-toggle", "value"),
        Input("diag-source", "value"),
        Input(sid("run", "run"), "data"),
        State(sid("meta", "run"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "run_curves"),
        [*[Output(f"curve-{name}", "figure") for name in CURVES],
         *[Output(f"curve-box-{name}", "style") for name in CURVES]],
        Input(sid("version", "run"), "data"),
        Input(sid("run", "run"), "data"),
        Input("loss-log", "value"),
        Input("ratio-band", "value"),
        Input("betti-mode", "value"),
        State(sid("meta", "run"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "run_cursor"),
        Output("metrics-readout", "children"),
        Input(sid("cursor", "run"), "data"),
        Input(sid("version", "run"), "data"),
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
