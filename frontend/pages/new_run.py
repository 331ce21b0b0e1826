"""New run `/new`: preset + every RunConfig field (ranges from `GET /api/fields`), API validation
messages next to the offending field, "Start run" and "Paper pair"."""

from __future__ import annotations

import math
import re
from typing import Any

import dash
from dash import ClientsideFunction, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from frontend.api_client import ApiClient, ApiError, ApiUnavailable

# Fields the form does not render as inputs (the preset has its own selector).
_SKIP = {"preset"}


def layout(query: dict[str, str]) -> html.Div:
    return html.Div(
        [
            html.Div(
                [html.Div([html.H1("New run"),
                           html.P("Pick a preset: every field is filled with its defaults and stays editable.",
                                  className="muted")])],
                className="page-head",
            ),
            html.Div(html.Div("Loading presets…", className="empty-state"), id="new-form-container"),
            dcc.Interval(id="new-load-interval", interval=2000, n_intervals=0),
            dcc.Store(id="new-data", data={"want_preset": query.get("preset")}),
            dcc.Location(id="new-nav", refresh="callback-nav"),
        ],
        id="page-new",
        className="page",
    )


# -- helpers ---------------------------------------------------------------------------------

def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3g}"
        return f"{v:g}"
    return str(v)


def _sup(n: int) -> str:
    return str(n).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def _num_re(v: Any) -> str:
    """A regex matching the number ``v`` as a person writes it (0, 0.0, 1, 1.0, 1e-3...)."""
    return rf"{re.escape(_fmt(v))}(?:\.0+)?(?![\d.])"


def _exclusive(f: dict) -> tuple[bool, bool]:
    """Whether the field's min / max are excluded. ``GET /api/fields`` gives inclusive-looking ``min``/``max``;
    an explicit ``exclusive_min``/``exclusive_max`` wins, else the help text's own rule ("must be > 0",
    "in [0, 1)") says which end is open."""
    lo, hi, text = f.get("min"), f.get("max"), f.get("help") or ""
    ex_lo, ex_hi = f.get("exclusive_min"), f.get("exclusive_max")
    if ex_lo is None:
        ex_lo = lo is not None and bool(re.search(rf"(?:>\s*|\(\s*){_num_re(lo)}", text))
    if ex_hi is None:
        ex_hi = hi is not None and bool(re.search(rf"(?:<\s*{_num_re(hi)}|,\s*{_num_re(hi)}\s*\))", text))
    return bool(ex_lo), bool(ex_hi)


def _range_text(f: dict) -> str:
    """The field's exact bounds: "> 0", "≥ 1", "[0, 1)", "1 – 8192" (integers, both ends included)."""
    lo, hi = f.get("min"), f.get("max")
    if f.get("type") == "choice" and f.get("choices"):
        return "one of " + ", ".join(map(str, f["choices"]))
    ex_lo, ex_hi = _exclusive(f)
    if lo is not None and hi is not None:
        if f.get("type") == "int" and not (ex_lo or ex_hi):
            return f"{_fmt(lo)} – {_fmt(hi)}"
        return f"{'(' if ex_lo else '['}{_fmt(lo)}, {_fmt(hi)}{')' if ex_hi else ']'}"
    if lo is not None:
        return f"{'>' if ex_lo else '≥'} {_fmt(lo)}"
    if hi is not None:
        return f"{'<' if ex_hi else '≤'} {_fmt(hi)}"
    return ""


def _help_text(f: dict) -> str:
    """The field's help without a restatement of its bounds (the hint shows those exactly, once)."""
    text = f.get("help") or ""
    lo, hi = f.get("min"), f.get("max")
    nums = "|".join(_num_re(v) for v in (lo, hi) if v is not None)
    if nums:
        # "must be > 0", "must be >= 1", ", in [0, 1)", "between 1 and 8192"
        bound = rf"(?:must be\s*)?(?:[<>]=?|≥|≤)\s*(?:{nums})|(?:must be\s*)?in\s*[\[(]\s*(?:{nums})\s*,\s*(?:{nums})\s*[\])]"
        text = re.sub(rf"(?:^|[,;]\s*|\s+)(?:{bound})\s*(?=[,;]|$)", "", text)
        text = re.sub(rf"^\s*(?:{bound})\s*[,;]\s*", "", text)
    return text.strip(" ,;")


def _number_error(f: dict) -> str:
    """The message for a number field the browser could not read: empty, or text such as "1e400" (it
    overflows a double) that a number input reports as no value at all, which the API would only call
    "not a valid number". Says what the field takes, with its exact bounds."""
    kind = "a whole number" if f.get("type") == "int" else "a finite number"
    bounds = _range_text(f)
    if bounds[:1] in ("<", ">", "≤", "≥"):
        return f"{f['name']} must be {kind} {bounds}"
    return f"{f['name']} must be {kind}" + (f" in {bounds}" if bounds else "")


def _float_step(f: dict, value: Any) -> str:
    """The ``step`` of a float input: "any". A step derived from the default (0.001 for lr 0.003) makes the
    browser reject every value off that grid (lr 0.0025, the paper pair's small rate) and Dash then sends
    None; a float field takes any value within its bounds."""
    return "any"


def _input_for(f: dict, value: Any):
    name, ftype = f["name"], f.get("type", "str")
    fid = f"field-{name}"
    if ftype == "choice":
        opts = [{"label": str(c), "value": c} for c in (f.get("choices") or [])]
        if len(opts) <= 4:
            return dcc.RadioItems(id=fid, options=opts, value=value, inline=True, className="segmented")
        return dcc.Dropdown(id=fid, options=opts, value=value, clearable=False, searchable=False)
    if ftype == "bool":
        return dcc.Checklist(id=fid, options=[{"label": " enabled", "value": "on"}], value=["on"] if value else [],
                             className="switch")
    if ftype in ("int", "float"):
        return dcc.Input(id=fid, type="number", value=value, step=1 if ftype == "int" else _float_step(f, value),
                         debounce=False, className="input", inputMode="numeric" if ftype == "int" else "decimal")
    return dcc.Input(id=fid, type="text", value=value if value is not None else "", className="input",
                     placeholder=f.get("help") or "")


def _field_block(f: dict, value: Any) -> html.Div:
    name = f["name"]
    unit = f.get("unit")
    label = [html.Span(f.get("label") or name)]
    if unit:
        label.append(html.Span(str(unit), className="unit"))
    hint = " · ".join(x for x in [_range_text(f), _help_text(f)] if x)
    return html.Div(
        [
            html.Label(label, htmlFor=f"field-{name}", className="field-label"),
            _input_for(f, value),
            html.Div(hint, className="field-hint", id=f"hint-{name}"),
            html.Div(id=f"error-{name}", className="field-error", role="alert"),
        ],
        className=f"field field-type-{f.get('type', 'str')}",
        id=f"fieldbox-{name}",
    )


def _preset_info(p: dict | None) -> list:
    if not p:
        return []
    out = [html.H3(p.get("title") or p["name"], className="preset-title")]
    if p.get("description"):
        out.append(html.P(p["description"]))
    if p.get("source"):
        out.append(html.P(["Source: ", html.Span(p["source"], className="preset-source")], className="muted small"))
    facts = []
    if p.get("neuron_dim") is not None:
        facts.append(f"neurons in ℝ{_sup(p['neuron_dim'])}")
    pair = p.get("pair") or []
    if pair:
        facts.append("paper pair: " + " vs ".join(
            f"{m.get('label', '')} lr {_fmt(m.get('lr'))}" + (f", {m['epochs']} epochs" if m.get("epochs") else "")
            for m in pair))
    if p.get("requires_data_path"):
        facts.append("needs a data file (data_path)")
    if facts:
        out.append(html.Ul([html.Li(x) for x in facts], className="facts"))
    return out


def _pair_label(p: dict | None) -> str:
    pair = (p or {}).get("pair") or []
    if len(pair) >= 2:
        return "Paper pair (lr " + " vs ".join(_fmt(m.get("lr")) for m in pair) + ")"
    return "Paper pair"


def _form(presets: list[dict], fields: list[dict], preset_name: str) -> html.Div:
    preset = next((p for p in presets if p["name"] == preset_name), presets[0] if presets else None)
    defaults = (preset or {}).get("defaults") or {}
    options = [{"label": p.get("title") or p["name"], "value": p["name"]} for p in presets]
    return html.Div(
        [
            html.Div(
                [
                    html.Label("Preset", htmlFor="preset-select", className="field-label"),
                    dcc.Dropdown(id="preset-select", options=options, value=(preset or {}).get("name"),
                                 clearable=False, searchable=False),
                    html.Div(id="error-preset", className="field-error", role="alert"),
                    html.Div(_preset_info(preset), id="preset-info", className="preset-info"),
                ],
                className="card preset-card",
            ),
            html.Div(
                [
                    html.Div([_field_block(f, defaults.get(f["name"])) for f in fields if f["name"] not in _SKIP],
                             id="new-fields", className="fields-grid"),
                    html.Div(
                        [
                            html.Button("Start run", id="submit-run", className="btn primary", n_clicks=0),
                            html.Button(_pair_label(preset), id="paper-pair", className="btn", n_clicks=0,
                                        title="Launch the preset's small- and large-lr runs (same seed) and compare"),
                            html.Div(id="form-message", className="form-message", role="status"),
                        ],
                        className="form-actions",
                    ),
                ],
                className="card fields-card",
            ),
        ],
        className="new-run-grid",
    )


def _walk(node: Any):
    """Yield every component dict of a serialised Dash layout tree."""
    if isinstance(node, list):
        for c in node:
            yield from _walk(c)
    elif isinstance(node, dict):
        yield node
        props = node.get("props") or {}
        yield from _walk(props.get("children"))


def _collect(children: Any, fields: list[dict], preset: dict) -> dict[str, Any]:
    """Current form values (from the live layout tree), converted to the API's types."""
    types = {f["name"]: f.get("type", "str") for f in fields}
    defaults = preset.get("defaults") or {}
    values: dict[str, Any] = {}
    for comp in _walk(children):
        props = comp.get("props") or {}
        cid = props.get("id")
        if not isinstance(cid, str) or not cid.startswith("field-"):
            continue
        name = cid[len("field-"):]
        if name not in types:
            continue
        v = props.get("value")
        t = types[name]
        if t == "bool":
            v = bool(v)
        elif t == "int" and isinstance(v, float) and math.isfinite(v) and v.is_integer():
            v = int(v)
        elif t == "str":
            v = (v or "").strip() or None
        if v is None and defaults.get(name) is None:
            continue  # optional field left empty
        values[name] = v
    return values


def register(app, client: ApiClient) -> None:
    @app.callback(
        Output("new-form-container", "children"),
        Output("new-load-interval", "disabled"),
        Output("new-data", "data"),
        Input("new-load-interval", "n_intervals"),
        State("new-data", "data"),
    )
    def load(_n, data):
        data = data or {}
        if data.get("presets"):
            raise PreventUpdate
        try:
            presets = client.presets()
            fields = client.fields()
        except (ApiUnavailable, ApiError) as exc:
            return (html.Div([html.Strong("Presets are not available yet. "), html.Span(str(exc)),
                              html.Span(" Retrying…", className="muted")], className="card empty-state"),
                    False, dash.no_update)
        want = data.get("want_preset")
        name = want if any(p["name"] == want for p in presets) else (presets[0]["name"] if presets else None)
        data = {**data, "presets": presets, "fields": fields}
        return _form(presets, fields, name), True, data

    # Not on the form's first render: it is built with the chosen preset's values already, and a late
    # initial call would overwrite what the user typed in the meantime.
    @app.callback(
        Output("preset-info", "children"),
        Output("paper-pair", "children"),
        Input("preset-select", "value"),
        State("new-data", "data"),
        prevent_initial_call=True,
    )
    def choose_preset(name, data):
        presets = (data or {}).get("presets") or []
        fields = (data or {}).get("fields") or []
        preset = next((p for p in presets if p["name"] == name), None)
        if preset is None:
            raise PreventUpdate
        defaults = preset.get("defaults") or {}
        for f in fields:
            n = f["name"]
            if n in _SKIP:
                continue
            v = defaults.get(n)
            props: dict[str, Any] = {}
            if f.get("type") == "bool":
                v = ["on"] if v else []
            elif f.get("type") == "str" and v is None:
                v = ""
            elif f.get("type") == "float":
                props["step"] = _float_step(f, v)
            dash.set_props(f"field-{n}", {"value": v, **props})
            dash.set_props(f"error-{n}", {"children": None})
        dash.set_props("form-message", {"children": None, "className": "form-message"})
        return _preset_info(preset), _pair_label(preset)

    def _show_errors(errs: dict[str, str], fields: list[dict]) -> str:
        known = {f["name"] for f in fields} | {"preset"}
        for f in fields:
            if f["name"] not in _SKIP:
                dash.set_props(f"error-{f['name']}", {"children": errs.get(f["name"])})
        dash.set_props("error-preset", {"children": errs.get("preset")})
        rest = [f"{k}: {v}" if k != "__all__" else v for k, v in errs.items() if k not in known]
        n = len([k for k in errs if k in known])
        head = f"Please fix {n} field{'s' if n != 1 else ''}." if n else "The API refused the run."
        return " ".join([head, *rest])

    def _submit(kind: str, children, name, data):
        data = data or {}
        presets, fields = data.get("presets") or [], data.get("fields") or []
        preset = next((p for p in presets if p["name"] == name), None)
        if preset is None:
            raise PreventUpdate
        values = _collect(children, fields, preset)
        if kind == "pair":
            defaults = preset.get("defaults") or {}
            # Only real overrides; the pair sets lr (and, unless changed, epochs) itself.
            body = {k: v for k, v in values.items() if k != "lr" and v != defaults.get(k)}
        else:
            body = values
        body = {"preset": name, **body}
        for f in fields:
            if f["name"] not in _SKIP:
                dash.set_props(f"error-{f['name']}", {"children": None})
        unreadable = {f["name"]: _number_error(f) for f in fields
                      if f.get("type") in ("int", "float") and f["name"] in body and body[f["name"]] is None}
        if unreadable:
            # The API checks the fields the browser could read, so every mistake shows in one round.
            try:
                client.check_run({k: v for k, v in body.items() if k not in unreadable})
                checked: dict[str, str] = {}
            except ApiError as exc:
                checked = exc.field_errors()
            except ApiUnavailable:
                checked = {}
            return dash.no_update, _show_errors(checked | unreadable, fields), "form-message error"
        try:
            res = client.create_pair(body) if kind == "pair" else client.create_run(body)
        except ApiError as exc:
            return dash.no_update, _show_errors(exc.field_errors(), fields), "form-message error"
        except ApiUnavailable as exc:
            return dash.no_update, str(exc), "form-message error"
        if kind == "pair":
            ids = res.get("ids") or []
            href = res.get("compare") or ("/compare?runs=" + ",".join(ids))
            return href, f"Started runs {', '.join(ids)}", "form-message ok"
        return f"/runs/{res['id']}", f"Started run {res['id']}", "form-message ok"

    # Dim the fields the chosen optimizer / preset does not use (momentum, Adam state, data file).
    app.clientside_callback(
        ClientsideFunction("topowatch", "form_relevance"),
        Output("new-fields", "className"),
        Input("field-optimizer", "value"),
        Input("preset-select", "value"),
        State("new-data", "data"),
    )

    @app.callback(
        Output("new-nav", "href"),
        Output("form-message", "children"),
        Output("form-message", "className"),
        Input("submit-run", "n_clicks"),
        State("new-fields", "children"),
        State("preset-select", "value"),
        State("new-data", "data"),
        prevent_initial_call=True,
        running=[(Output("submit-run", "disabled"), True, False)],
    )
    def submit(n, children, name, data):
        if not n:
            raise PreventUpdate
        return _submit("run", children, name, data)

    @app.callback(
        Output("new-nav", "href", allow_duplicate=True),
        Output("form-message", "children", allow_duplicate=True),
        Output("form-message", "className", allow_duplicate=True),
        Input("paper-pair", "n_clicks"),
        State("new-fields", "children"),
        State("preset-select", "value"),
        State("new-data", "data"),
        prevent_initial_call=True,
        running=[(Output("paper-pair", "disabled"), True, False)],
    )
    def pair(n, children, name, data):
        if not n:
            raise PreventUpdate
        return _submit("pair", children, name, data)
