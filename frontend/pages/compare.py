"""Compare `/compare?runs=a,b[,c]&align=step|fraction`: one column per run (cloud + barcode), metric
curves overlaid (one colour per run), one shared timeline by step or by fraction of training."""

from __future__ import annotations

from dash import ALL, ClientsideFunction, Input, Output, State, dcc, html

from frontend.components import graph, sid, stores, timeline_bar

MAX_RUNS = 4
CMP_CURVES = ["kemp", "loss", "eta", "betti", "bottleneck", "knn", "accuracy"]
RUN_COLORS = ["#5b6cff", "#ef553b", "#00b386", "#ab63fa"]


def _float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def layout(query: dict[str, str]) -> html.Div:
    ids: list[str] = []
    for rid in (query.get("runs") or "").split(","):
        rid = rid.strip()
        if rid and rid not in ids:
            ids.append(rid)
    ids = ids[:MAX_RUNS]
    align = query.get("align") if query.get("align") in ("step", "fraction") else "step"
    pos = _float(query.get("frac")) if align == "fraction" else _float(query.get("step"))
    head = html.Div(
        [
            html.Div([html.H1("Compare"),
                      html.P("One column per run; curves overlaid; one shared cursor.", className="muted")]),
            html.Div(
                [
                    html.Span("Align", className="field-label inline"),
                    dcc.RadioItems(id="align-select",
                                   options=[{"label": "by step", "value": "step"},
                                            {"label": "by fraction of training", "value": "fraction"}],
                                   value=align, inline=True, className="segmented"),
                ],
                className="page-actions",
            ),
        ],
        className="page-head",
    )
    if not ids:
        return html.Div(
            [head, html.Div([html.P("No runs to compare. Select two or more runs on the runs page."),
                             dcc.Link("Go to the runs", href="/", className="btn")], className="card empty-state")],
            id="page-compare-empty", className="page",
        )
    meta = {"kind": "compare", "runs": ids, "align": align, "init_pos": pos, "live": pos is None}
    cols = []
    for i, rid in enumerate(ids):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        cols.append(html.Div(
            [
                html.Div(
                    [
                        html.Span(className="swatch", style={"background": color}),
                        dcc.Link(rid, href=f"/runs/{rid}", id={"type": "cmp-title", "index": i},
                                 className="cmp-title"),
                        html.Span("…", id={"type": "cmp-badge", "index": i}, className="badge badge-unknown"),
                    ],
                    className="cmp-col-head",
                ),
                html.Div(id={"type": "cmp-info", "index": i}, className="run-facts small"),
                # the step this column draws (its latest frame at or before the shared cursor)
                html.Div("–", id={"type": "cmp-step", "index": i}, className="cmp-step", role="status"),
                graph({"type": "cmp-cloud", "index": i}, 400),
                graph({"type": "cmp-barcode", "index": i}, 250),
            ],
            className="card cmp-col",
            style={"borderTopColor": color},
        ))
    summary = html.Div(
        [
            html.Div(
                [html.H3("Topology-preserving phase", className="card-title"),
                 html.Span(["η·K_emp = η × K_emp per snapshot interval; above 1 the run is certified past η* = 1/K ",
                            "(neurons may merge or tear). Values over the analysed frames."],
                           className="muted small")],
                className="card-head",
            ),
            # filled by the cmp_summary clientside callback: one <tr data-run-id=...> per run
            html.Div(html.P("Loading…", className="muted small"), id="compare-summary", className="summary-wrap"),
        ],
        className="card summary-card",
    )
    curves = html.Div(
        [
            html.Div([html.H2("Metrics, overlaid")], className="section-head"),
            html.Div(id="cmp-readout", className="readout", title="Values at the cursor",
                     style={"minHeight": f"{17 * len(ids)}px"}),
            html.Div(
                [html.Div(graph(f"cmp-curve-{name}", 260), id=f"cmp-curve-box-{name}", className="card curve-card",
                          style={"display": "none"} if name == "accuracy" else {})
                 for name in CMP_CURVES],
                className="curves-grid",
            ),
        ],
        className="curves-section",
    )
    return html.Div(
        [head, summary, timeline_bar(), html.Div(cols, className=f"compare-cols n{len(ids)}"), curves,
         *stores(meta, "cmp")],
        id="page-compare",
        className="page page-compare",
    )


def register(app, client) -> None:  # noqa: ARG001 - uniform page API
    app.clientside_callback(
        ClientsideFunction("topowatch", "cmp_align"),
        Output(sid("meta", "cmp"), "data"),
        Input("align-select", "value"),
        State(sid("meta", "cmp"), "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "cmp_status"),
        Output({"type": "cmp-title", "index": ALL}, "children"),
        Output({"type": "cmp-badge", "index": ALL}, "children"),
        Output({"type": "cmp-badge", "index": ALL}, "className"),
        Output({"type": "cmp-info", "index": ALL}, "children"),
        Input(sid("run", "cmp"), "data"),
        State(sid("meta", "cmp"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "cmp_render"),
        Output({"type": "cmp-cloud", "index": ALL}, "figure"),
        Output({"type": "cmp-barcode", "index": ALL}, "figure"),
        Output({"type": "cmp-step", "index": ALL}, "children"),
        Output({"type": "cmp-step", "index": ALL}, "className"),
        Output("current-step", "children", allow_duplicate=True),
        Output("current-step-extra", "children", allow_duplicate=True),
        Output("current-step-label", "children"),
        Input(sid("cursor", "cmp"), "data"),
        Input(sid("tick", "cmp"), "data"),
        Input(sid("run", "cmp"), "data"),
        State(sid("meta", "cmp"), "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "cmp_summary"),
        Output("compare-summary", "children"),
        Input(sid("version", "cmp"), "data"),
        Input(sid("run", "cmp"), "data"),
        State(sid("meta", "cmp"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "cmp_curves"),
        [*[Output(f"cmp-curve-{name}", "figure") for name in CMP_CURVES],
         *[Output(f"cmp-curve-box-{name}", "style") for name in CMP_CURVES]],
        Input(sid("version", "cmp"), "data"),
        Input(sid("run", "cmp"), "data"),
        Input(sid("meta", "cmp"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "cmp_cursor"),
        Output("cmp-readout", "children"),
        Input(sid("cursor", "cmp"), "data"),
        Input(sid("version", "cmp"), "data"),
        State(sid("meta", "cmp"), "data"),
    )
