"""Home `/`: the runs, newest first, updating live; select 2+ to compare."""

from __future__ import annotations

from dash import ClientsideFunction, Input, Output, dcc, html


def layout() -> html.Div:
    return html.Div(
        [
            html.Div(
                [
                    html.Div([html.H1("Runs"), html.P("Training runs, newest first. Select two or more to compare.",
                                                      className="muted")]),
                    html.Div(
                        [
                            html.Button("Compare", id="compare-button", className="btn", disabled=True,
                                        title="Select two or more runs"),
                            dcc.Link("+ New run", href="/new", id="new-run-button", className="btn primary"),
                        ],
                        className="page-actions",
                    ),
                ],
                className="page-head",
            ),
            # Filled and kept up to date by frontend/assets/40_home.js (no server round trip).
            html.Div(id="runs-table", className="card runs-table"),
            dcc.Interval(id="home-interval", interval=1500),
            dcc.Store(id="home-dummy"),
        ],
        id="page-home",
        className="page",
    )


def register(app, client) -> None:  # noqa: ARG001 - uniform page API
    app.clientside_callback(
        ClientsideFunction("topowatch", "home_poll"),
        Output("home-dummy", "data"),
        Input("home-interval", "n_intervals"),
    )
