"""Building blocks shared by the run and compare pages."""

from __future__ import annotations

from dash import dcc, html

# Plotly config for every graph: no logo, keep the useful mode-bar buttons only.
GRAPH_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
    "toImageButtonOptions": {"format": "png", "scale": 2},
}

# Dash 4 sliders grow a number box unless told not to (older Dash does not know the prop).
SLIDER_EXTRA = {"allow_direct_input": False} if "allow_direct_input" in dcc.Slider().available_properties else {}

SPEEDS = [
    {"label": "2 fps", "value": 2},
    {"label": "5 fps", "value": 5},
    {"label": "10 fps", "value": 10},
    {"label": "20 fps", "value": 20},
]


def graph(graph_id, height: int, className: str = "graph") -> dcc.Graph:
    """A graph with a fixed height (no layout jumps) and an empty figure until JS draws it."""
    return dcc.Graph(
        id=graph_id,
        figure={"data": [], "layout": {"height": height, "paper_bgcolor": "rgba(0,0,0,0)",
                                       "plot_bgcolor": "rgba(0,0,0,0)",
                                       "xaxis": {"visible": False}, "yaxis": {"visible": False}}},
        config=GRAPH_CONFIG,
        style={"height": f"{height}px"},
        className=className,
    )


def timeline_bar() -> html.Div:
    """Play/pause, speed, step -1/+1, the slider over analysed frames, the step read-out, Live."""
    return html.Div(
        [
            html.Div(
                [
                    html.Button("▶", id="play-button", className="btn icon play", title="Play / pause (space)",
                                n_clicks=0),
                    dcc.Dropdown(id="speed-select", options=SPEEDS, value=5, clearable=False, searchable=False,
                                 className="speed-select"),
                    html.Button("‹", id="step-prev", className="btn icon", title="Previous frame (←)", n_clicks=0),
                    html.Button("›", id="step-next", className="btn icon", title="Next frame (→)", n_clicks=0),
                ],
                className="timeline-buttons",
            ),
            html.Div(
                dcc.Slider(id="timeline-slider", min=0, max=0, step=1, value=0, marks={}, updatemode="drag",
                           included=True, **SLIDER_EXTRA),
                className="timeline-slider-wrap",
            ),
            html.Div(
                [
                    html.Span(id="current-step-label", className="step-label", children="step"),
                    html.Span("–", id="current-step", className="current-step"),
                    html.Span(id="current-step-extra", className="step-extra"),
                ],
                className="step-readout",
                title="Current analysed step",
            ),
            html.Button([html.Span(className="live-dot"), "Live"], id="live-toggle", className="btn live off",
                        title="Follow the newest frame while the run trains", n_clicks=0),
            dcc.Interval(id="play-interval", interval=200, disabled=True),
        ],
        className="timeline card",
    )


def sid(kind: str, page: str) -> dict:
    """Id of a page-scoped store. The run and compare pages share the poll/timeline callbacks, which
    address these with ``ALL``; page-specific callbacks address their own page's store directly, so
    no callback ever sees half of its inputs missing when the page changes."""
    return {"type": f"tw-{kind}", "page": page}


def stores(meta: dict, page: str) -> list:
    """Client-side state of a run/compare page (the big data stays in JS memory, not in stores)."""
    return [
        dcc.Store(id=sid("meta", page), data=meta),
        dcc.Store(id=sid("run", page)),
        dcc.Store(id=sid("version", page), data=0),
        dcc.Store(id=sid("cursor", page)),
        dcc.Store(id=sid("tick", page), data=0),
        dcc.Store(id="live-store", data=meta.get("live", True)),
        dcc.Store(id="playing-store", data=False),
        dcc.Interval(id="poll-interval", interval=1000),
    ]


def card(title, children, *, tools=None, className: str = "") -> html.Div:
    head = [html.H3(title, className="card-title")]
    if tools is not None:
        head.append(html.Div(tools, className="card-tools"))
    return html.Div([html.Div(head, className="card-head"), *children], className=f"card {className}".strip())


def register_shared(app) -> None:
    """Callbacks shared by the run and compare pages (both have the stores and timeline above)."""
    from dash import ALL, ClientsideFunction, Input, Output, State

    app.clientside_callback(
        ClientsideFunction("topowatch", "poll"),
        Output(sid("version", ALL), "data"),
        Output(sid("run", ALL), "data"),
        Output("poll-interval", "interval"),
        Input("poll-interval", "n_intervals"),
        Input(sid("meta", ALL), "data"),
        State(sid("version", ALL), "data"),
        State(sid("run", ALL), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("topowatch", "timeline"),
        Output("timeline-slider", "value"),
        Output("timeline-slider", "max"),
        Output("timeline-slider", "marks"),
        Output(sid("cursor", ALL), "data"),
        Output("live-store", "data"),
        Output("live-toggle", "className"),
        Output("playing-store", "data"),
        Output("play-interval", "disabled"),
        Output("play-interval", "interval"),
        Output("play-button", "children"),
        Input(sid("version", ALL), "data"),
        Input(sid("meta", ALL), "data"),
        Input("timeline-slider", "value"),
        Input("step-prev", "n_clicks"),
        Input("step-next", "n_clicks"),
        Input("play-interval", "n_intervals"),
        Input("live-toggle", "n_clicks"),
        Input("play-button", "n_clicks"),
        Input("speed-select", "value"),
        Input(sid("run", ALL), "data"),
        State(sid("cursor", ALL), "data"),
        State("live-store", "data"),
        State("playing-store", "data"),
        State("timeline-slider", "max"),
    )
