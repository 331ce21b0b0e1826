"""Fast checks of the dashboard's Python side (no browser, no real stack): the same-origin proxy,
the API client's error handling, page layouts and the form helpers."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from frontend.api_client import ApiClient, ApiError, ApiUnavailable
from frontend.app import create_app
from frontend.pages import compare, home, new_run, run


class _Stub(BaseHTTPRequestHandler):
    """A stand-in API: /api/health, a 422 on POST /api/runs, a big JSON body, 404 otherwise."""

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        if self.path == "/api/health":
            self._send(200, {"status": "ok", "redis": True, "version": "stub"})
        elif self.path.startswith("/api/runs/r1/frames"):
            self._send(200, {"run_id": "r1", "query": self.path, "frames": [{"step": i, "x": [0.5] * 200} for i in range(20)]})
        else:
            self._send(404, {"detail": "unknown run"})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/api/runs" and body.get("lr", 1) <= 0:
            self._send(422, {"detail": [{"loc": ["body", "lr"], "msg": "Value error, lr must be > 0", "type": "value_error"}]})
        else:
            self._send(201, {"id": "r1", "config": body})


@pytest.fixture(scope="module")
def stub_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_proxy_passes_status_and_body(stub_api):
    client = create_app(stub_api).server.test_client()
    resp = client.get("/api/health")
    assert resp.status_code == 200 and resp.get_json()["version"] == "stub"
    resp = client.get("/api/runs/nope")
    assert resp.status_code == 404 and resp.get_json() == {"detail": "unknown run"}
    resp = client.post("/api/runs", json={"preset": "figure-eight", "lr": -1})
    assert resp.status_code == 422 and resp.get_json()["detail"][0]["loc"] == ["body", "lr"]
    assert resp.headers["Cache-Control"] == "no-store"


def test_proxy_keeps_query_and_compresses_big_json(stub_api):
    client = create_app(stub_api).server.test_client()
    resp = client.get("/api/runs/r1/frames?include=full&start=5&end=9", headers={"Accept-Encoding": "gzip"})
    assert resp.status_code == 200 and resp.headers.get("Content-Encoding") == "gzip"
    body = json.loads(gzip.decompress(resp.data))
    assert "include=full" in body["query"] and "start=5" in body["query"] and "end=9" in body["query"]


def test_proxy_answers_502_when_the_api_is_down():
    client = create_app("http://127.0.0.1:9").server.test_client()
    resp = client.get("/api/health")
    assert resp.status_code == 502
    assert "cannot be reached" in resp.get_json()["detail"]


def test_api_client_errors(stub_api):
    api = ApiClient(stub_api)
    assert api.health()["status"] == "ok"
    with pytest.raises(ApiError) as err:
        api.create_run({"preset": "figure-eight", "lr": -1})
    assert err.value.status == 422
    assert err.value.field_errors() == {"lr": "lr must be > 0"}
    with pytest.raises(ApiError) as err:
        api.run("nope")
    assert err.value.status == 404 and err.value.field_errors() == {"__all__": "unknown run"}
    with pytest.raises(ApiUnavailable):
        ApiClient("http://127.0.0.1:9", timeout=1).health()


def _ids(component) -> set[str]:
    found = set()

    def walk(c):
        if isinstance(c, (list, tuple)):
            for x in c:
                walk(x)
            return
        cid = getattr(c, "id", None)
        if isinstance(cid, str):
            found.add(cid)
        children = getattr(c, "children", None)
        if children is not None and not isinstance(children, str):
            walk(children)

    walk(component)
    return found


def test_layouts_carry_the_stable_ids():
    assert {"runs-table", "compare-button", "new-run-button"} <= _ids(home.layout())
    run_ids = _ids(run.layout("abc", {"step": "40"}))
    assert {"status-badge", "stop-button", "timeline-slider", "play-button", "step-prev", "step-next",
            "live-toggle", "current-step", "cloud-graph", "barcode-graph", "diagram-graph", "phase-indicator"} <= run_ids
    assert run.meta_from_query("abc", {"step": "40"})["init_pos"] == 40
    assert run.meta_from_query("abc", {})["live"] is True
    cmp_ids = _ids(compare.layout({"runs": "a,b,a", "align": "fraction"}))
    assert {"timeline-slider", "current-step", "align-select", "compare-summary"} <= cmp_ids
    # the JS draws one curve per id, in the same order as the pages declare them
    js = (Path(__file__).resolve().parents[2] / "frontend" / "assets" / "25_curves.js").read_text()
    assert f"const RUN_CURVES = {json.dumps(run.CURVES)};".replace('"', "'") in js
    assert f"const CMP_CURVES = {json.dumps(compare.CMP_CURVES)};".replace('"', "'") in js
    assert "new-form-container" in _ids(new_run.layout({}))


def test_form_helpers_build_every_field_and_read_values_back():
    fields = [
        {"name": "width", "label": "Width", "unit": "neurons", "type": "int", "min": 1, "max": 8192},
        {"name": "lr", "label": "Learning rate", "unit": "eta", "type": "float", "min": 0, "max": None},
        {"name": "optimizer", "type": "choice", "choices": ["sgd", "momentum", "adam"]},
        {"name": "data_path", "type": "str"},
        {"name": "optimizer_state_in_neuron", "type": "bool"},
    ]
    preset = {"name": "figure-eight", "defaults": {"width": 1024, "lr": 0.003, "optimizer": "sgd", "data_path": None,
                                                   "optimizer_state_in_neuron": False}}
    form = new_run._form([preset], fields, "figure-eight")
    ids = _ids(form)
    for f in fields:
        assert f"field-{f['name']}" in ids and f"error-{f['name']}" in ids
    assert {"preset-select", "submit-run", "paper-pair"} <= ids
    tree = json.loads(json.dumps(form.to_plotly_json(), cls=_PlotlyEncoder))
    values = new_run._collect(tree, fields, preset)
    assert values == {"width": 1024, "lr": 0.003, "optimizer": "sgd", "optimizer_state_in_neuron": False}
    assert new_run._range_text(fields[0]) == "1 – 8192"
    # a float input takes any value: a step derived from the default (0.001) made the browser reject 0.0025
    assert new_run._float_step(fields[1], 0.003) == "any"


def test_form_hints_show_exact_bounds():
    lr = {"name": "lr", "type": "float", "min": 0, "max": None,
          "help": "must be > 0; compare with 1/lambda_max (the topological critical point)"}
    momentum = {"name": "momentum", "type": "float", "min": 0, "max": 1, "help": "used by the momentum optimizer, in [0, 1)"}
    every = {"name": "snapshot_every", "type": "int", "min": 1, "max": None, "help": "one snapshot per this many steps"}
    assert new_run._range_text(lr) == "> 0"
    assert new_run._help_text(lr) == "compare with 1/lambda_max (the topological critical point)"
    assert new_run._range_text(momentum) == "[0, 1)"
    assert new_run._help_text(momentum) == "used by the momentum optimizer"
    assert new_run._range_text(every) == "≥ 1"
    # an explicit flag from the API wins over the help text
    assert new_run._range_text({**momentum, "exclusive_max": False}) == "[0, 1]"
    block = new_run._field_block(lr, 0.003)
    hint = next(c for c in block.children if getattr(c, "id", None) == "hint-lr").children
    assert hint == "> 0 · compare with 1/lambda_max (the topological critical point)"
    assert "≥" not in hint and "must be" not in hint


def test_unreadable_numbers_get_the_fields_rule():
    """A number input reports no value for "1e400" (it overflows a double) or an empty box: the form says
    what the field takes instead of sending None for the API to call "not a valid number"."""
    lr = {"name": "lr", "type": "float", "min": 0, "max": None, "help": "must be > 0; compare with 1/lambda_max"}
    momentum = {"name": "momentum", "type": "float", "min": 0, "max": 1, "help": "used by the momentum optimizer, in [0, 1)"}
    width = {"name": "width", "type": "int", "min": 1, "max": 8192}
    assert new_run._number_error(lr) == "lr must be a finite number > 0"
    assert new_run._number_error(momentum) == "momentum must be a finite number in [0, 1)"
    assert new_run._number_error(width) == "width must be a whole number in 1 – 8192"
    assert new_run._number_error({"name": "seed", "type": "int"}) == "seed must be a whole number"


def test_run_page_query_controls():
    meta = run.meta_from_query("abc", {"bscale": "0.4", "bstd": "1", "bmin": "0.2", "k": "5"})
    assert (meta["bscale"], meta["bstd"], meta["bmin"], meta["knn_k"]) == (0.4, True, 0.2, 5)
    meta = run.meta_from_query("abc", {"bscale": "9", "bmin": "x", "k": "7", "step": "abc"})
    assert (meta["bscale"], meta["bmin"], meta["knn_k"], meta["init_pos"], meta["live"]) == (0.5, 0.1, 10, None, True)
    ids = _ids(run.layout("abc", {}))
    assert {"betti-scale", "betti-std", "betti-minlen", "betti-rule", "knn-k"} <= ids


class _PlotlyEncoder(json.JSONEncoder):
    def default(self, o):
        if hasattr(o, "to_plotly_json"):
            return o.to_plotly_json()
        return super().default(o)
