"""Browser tests of the dashboard against the real stack (`topowatch up`, fixture ``live_stack``).

They drive Debian's chromium through Playwright like a user: submit a run from the form, watch it
live, scrub the timeline, reload a step URL, see validation errors, stop a run, compare runs.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from tests.conftest import wait_for

sync_api = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run"]

CLOUD = "#cloud-graph .js-plotly-plot"
BARCODE = "#barcode-graph .js-plotly-plot"
SHORT = {"epochs": 3, "snapshot_every": 5}
# Long enough (~10 s of training on a CPU) to watch the live view follow the newest frames while the run
# trains (Live turns off once it has ended).
LIVE = {"epochs": 80, "snapshot_every": 20}
# Console noise that is not a dashboard bug (e.g. WebGL performance hints of software rendering).
IGNORED_CONSOLE = ("GL Driver Message", "GPU stall", "willReadFrequently", "Failed to load resource")


# ----------------------------------------------------------------------------------- helpers
def api_run(api_url: str, run_id: str) -> dict:
    return requests.get(f"{api_url}/api/runs/{run_id}", timeout=10).json()


def wait_run_status(api_url: str, run_id: str, statuses: tuple[str, ...], timeout: float = 240) -> dict:
    return wait_for(lambda: (r := api_run(api_url, run_id))["status"] in statuses and r, timeout,
                      f"run {run_id} to reach {statuses}")


def create_run(api_url: str, **body) -> str:
    resp = requests.post(f"{api_url}/api/runs", json={"preset": "figure-eight", **body}, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def analysed_steps(api_url: str, run_id: str) -> list[int]:
    frames = requests.get(f"{api_url}/api/runs/{run_id}/frames", timeout=30).json()["frames"]
    return [f["step"] for f in frames]


def wait_all_analysed(api_url: str, run_id: str, timeout: float = 120) -> list[int]:
    """Steps of a finished run once every snapshot it sent has been analysed (analysis may lag training)."""
    def done():
        run = api_run(api_url, run_id)
        steps = analysed_steps(api_url, run_id)
        return run["frames"] and run["frames"] >= run["snapshots"] and len(steps) >= run["frames"] and steps
    return wait_for(done, timeout, f"every snapshot of run {run_id} to be analysed")


def preset_title(api_url: str, name: str) -> str:
    presets = requests.get(f"{api_url}/api/presets", timeout=10).json()
    return next(p.get("title") or p["name"] for p in presets if p["name"] == name)


def graph_summary(page, selector: str):
    """A comparable digest of a plotly graph's data (first values of every trace)."""
    return page.evaluate(
        """(sel) => {
            const gd = document.querySelector(sel);
            if (!gd || !gd.data) return null;
            return gd.data.map((t) => ({type: t.type, n: (t.x || []).length,
                x: Array.from(t.x || []).slice(0, 40), y: Array.from(t.y || []).slice(0, 40)}));
        }""",
        selector,
    )


def cloud_points(page) -> int:
    return page.evaluate(f"(document.querySelector('{CLOUD}')?.data?.[0]?.x || []).length")


def shown_step(page) -> int | None:
    text = page.inner_text("#current-step").strip()
    return int(text) if text.isdigit() else None


def cloud_step(page) -> int | None:
    return page.evaluate(f"document.querySelector('{CLOUD}')?.layout?.meta?.step ?? null")


def wait_view_at(page, step: int, timeout: float = 30) -> None:
    """The read-out, the cloud and the barcode all show `step`."""
    page.wait_for_function(
        """([c, b, s]) => {
            const t = document.querySelector('#current-step');
            const cg = document.querySelector(c), bg = document.querySelector(b);
            return t && t.innerText.trim() === String(s) && cg && cg.layout && cg.layout.meta
                && cg.layout.meta.step === s && bg && bg.layout && bg.layout.meta && bg.layout.meta.step === s;
        }""",
        arg=[CLOUD, BARCODE, step],
        timeout=timeout * 1000,
    )


def choose_preset(page, title: str) -> None:
    page.click("#preset-select")
    page.get_by_role("option", name=title, exact=True).click()


# ----------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    pg.on("console", lambda msg: msg.type == "error" and not any(s in msg.text for s in IGNORED_CONSOLE)
          and problems.append(f"console: {msg.text[:300]}"))
    yield pg
    ctx.close()
    assert not problems, "the page logged errors:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def urls(live_stack) -> tuple[str, str]:
    return str(live_stack["api_url"]).rstrip("/"), str(live_stack["ui_url"]).rstrip("/")


@pytest.fixture(scope="module")
def finished_run(urls) -> tuple[str, list[int]]:
    """A short figure-eight run, trained to the end (started through the API)."""
    api, _ = urls
    run_id = create_run(api, **SHORT)
    wait_run_status(api, run_id, ("finished",))
    return run_id, wait_all_analysed(api, run_id)


# ----------------------------------------------------------------------------------- tests
def test_home_lists_runs_and_links_to_new(page, urls):
    _, ui = urls
    page.goto(ui + "/")
    page.wait_for_selector("#runs-table")
    page.wait_for_selector("#api-banner.hidden", state="attached")
    assert page.is_disabled("#compare-button")
    page.click("#new-run-button")
    page.wait_for_url(re.compile(r".*/new$"))
    page.wait_for_selector("#page-new #field-lr")


def test_submit_run_watch_it_live(page, urls):
    api, ui = urls
    page.goto(ui + "/")
    page.click("#new-run-button")
    page.wait_for_selector("#field-epochs")
    choose_preset(page, preset_title(api, "figure-eight"))
    # the preset fills every field with its defaults
    presets = requests.get(f"{api}/api/presets", timeout=10).json()
    defaults = next(p for p in presets if p["name"] == "figure-eight")["defaults"]
    page.wait_for_function("v => Number(document.querySelector('#field-lr').value) === v", arg=defaults["lr"])
    assert int(page.input_value("#field-width")) == defaults["width"]
    page.fill("#field-epochs", str(LIVE["epochs"]))
    page.fill("#field-snapshot_every", str(LIVE["snapshot_every"]))
    page.click("#submit-run")
    page.wait_for_url(re.compile(r".*/runs/[^/?]+$"))
    run_id = urlparse(page.url).path.rsplit("/", 1)[-1]
    assert api_run(api, run_id)["config"]["epochs"] == LIVE["epochs"]

    # Follow the run while it trains and its frames are analysed: the badge goes to running, and with
    # Live on the read-out follows the newest analysed frame.
    statuses, steps = [], []
    final_step = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        badge = page.inner_text("#status-badge").strip()
        if not statuses or statuses[-1] != badge:
            statuses.append(badge)
        step = shown_step(page)
        live = "on" in (page.get_attribute("#live-toggle", "class") or "").split()
        if live and step is not None and (not steps or steps[-1] != step):
            steps.append(step)
        if badge in ("finished", "failed", "diverged", "stopped"):
            if final_step is None:
                run = api_run(api, run_id)
                index = analysed_steps(api, run_id)
                if run["frames"] and run["frames"] >= run["snapshots"] and len(index) >= run["frames"]:
                    final_step = index[-1]
            if final_step is not None and step == final_step:
                break
        time.sleep(0.1)
    assert "running" in statuses, statuses
    assert statuses[-1] == "finished", statuses
    assert len(steps) >= 2 and steps == sorted(steps), f"frames did not advance while live: {steps}"
    # the run has ended: nothing left to follow, so Live is off, and the view stayed at the newest frame
    page.wait_for_function("document.querySelector('#live-toggle').classList.contains('off')")
    assert "on" not in page.get_attribute("#live-toggle", "class").split()

    # the cloud shows every neuron: 1024 points, coloured by their step-0 hue
    page.wait_for_function(f"(document.querySelector('{CLOUD}')?.data?.[0]?.x || []).length === 1024")
    assert cloud_points(page) == 1024
    wait_view_at(page, final_step)


def test_slider_and_arrow_keys_move_every_panel(page, urls, finished_run):
    api, ui = urls
    run_id, steps = finished_run
    page.goto(f"{ui}/runs/{run_id}")
    wait_view_at(page, steps[-1])
    cloud0, bar0 = graph_summary(page, CLOUD), graph_summary(page, BARCODE)

    # click on the slider's track a third of the way along
    box = page.locator("#timeline-slider .dash-slider-track").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.33, box["y"] + box["height"] / 2)
    page.wait_for_function("s => document.querySelector('#current-step').innerText.trim() !== String(s)",
                           arg=steps[-1])
    mid = shown_step(page)
    assert mid in steps and mid < steps[-1]
    wait_view_at(page, mid)
    assert "off" in page.get_attribute("#live-toggle", "class").split(), "scrubbing switches Live off"
    cloud1, bar1 = graph_summary(page, CLOUD), graph_summary(page, BARCODE)
    assert cloud1 != cloud0 and bar1 != bar0

    # the left arrow goes one analysed frame back; cloud and barcode follow
    page.keyboard.press("ArrowLeft")
    prev = steps[steps.index(mid) - 1]
    wait_view_at(page, prev)
    assert graph_summary(page, CLOUD) != cloud1 and graph_summary(page, BARCODE) != bar1
    # buttons too, and the URL records the step
    page.click("#step-next")
    wait_view_at(page, mid)
    page.wait_for_function("s => location.search.includes('step=' + s)", arg=mid)
    # the metric curves carry a cursor at the current step, and the read-out gives the values there
    page.wait_for_function("s => document.querySelector('#curve-loss .tw-cursor')?.dataset.x === String(s)", arg=mid)
    assert page.is_visible("#curve-loss .tw-cursor")
    assert page.inner_text("#metrics-readout").startswith(f"step {mid}")


def test_reload_at_step_url_shows_that_step(page, urls, finished_run):
    _, ui = urls
    run_id, steps = finished_run
    k = steps[len(steps) // 2]
    page.goto(f"{ui}/runs/{run_id}?step={k}")
    wait_view_at(page, k)
    assert "off" in page.get_attribute("#live-toggle", "class").split()
    page.reload()
    wait_view_at(page, k)
    assert parse_qs(urlparse(page.url).query)["step"] == [str(k)]
    # back/forward between pages restore the view
    page.click("a.nav-link[href='/']")
    page.wait_for_selector("#runs-table table")
    page.go_back()
    wait_view_at(page, k)


def test_run_page_draws_its_frame_at_once(page, urls, finished_run):
    """Without ?step (Live), with a step that is not a number, or past the end, the page fetches the one
    frame it shows first (GET /frames/{step}) and draws it within seconds; the cache fills afterwards."""
    _, ui = urls
    run_id, steps = finished_run
    for query in ("", "?step=abc", "?step=99999"):
        frame_requests: list[str] = []

        def record(request, out=frame_requests):
            if "/frames" in request.url:
                out.append(request.url)

        # Leave the previous view first: its cache-filling requests must not be counted as this view's.
        page.goto("about:blank")
        page.on("request", record)
        page.goto(f"{ui}/runs/{run_id}{query}")
        # the cloud of the last analysed step, with every neuron, in at most ~5 s
        page.wait_for_function(
            """([c, s]) => { const gd = document.querySelector(c);
                return gd && gd.layout && gd.layout.meta && gd.layout.meta.step === s && gd.data && gd.data[0]
                    && gd.data[0].x.length === 1024; }""",
            arg=[CLOUD, steps[-1]], timeout=5_000)
        full = [u for u in frame_requests if re.search(r"/frames/\d+$", u) or "include=full" in u]
        assert full and re.search(rf"/frames/{steps[-1]}$", full[0]), f"{query or 'no step'}: {full[:3]}"
        assert shown_step(page) == steps[-1]
        page.remove_listener("request", record)


def test_form_accepts_the_paper_pairs_small_lr(page, urls):
    """lr 0.0025 is off the 0.001 grid of the default 0.003: the browser must not reject it (step="any")."""
    api, ui = urls
    page.goto(f"{ui}/new")
    page.wait_for_selector("#field-epochs")
    choose_preset(page, preset_title(api, "figure-eight"))
    page.wait_for_function("document.querySelector('#field-lr').value !== ''")
    assert page.get_attribute("#field-lr", "step") == "any"
    page.fill("#field-lr", "0.0025")
    page.fill("#field-epochs", "1")
    page.fill("#field-snapshot_every", "5")
    assert page.evaluate("document.querySelector('#field-lr').validity.valid")
    page.click("#submit-run")
    page.wait_for_url(re.compile(r".*/runs/[^/?]+$"))
    run_id = urlparse(page.url).path.rsplit("/", 1)[-1]
    try:
        assert api_run(api, run_id)["config"]["lr"] == 0.0025
        page.wait_for_function("document.querySelector('#run-facts')?.textContent.includes('lr 0.0025')")
    finally:
        requests.post(f"{api}/api/runs/{run_id}/stop", timeout=10)


def test_betti_panel_scale_controls(page, urls, finished_run):
    """The Betti panel recomputes at another scale (GET /betti) and says which rule it shows."""
    api, ui = urls
    run_id, _ = finished_run
    page.goto(f"{ui}/runs/{run_id}")
    betti = "#curve-betti .js-plotly-plot"
    page.wait_for_function(f"document.querySelector('{betti}')?.data?.length > 0")
    title0 = page.evaluate(f"document.querySelector('{betti}').layout.title.text")
    assert "0.25 × diameter" in title0
    assert "Betti at 0.25 x diameter" in page.inner_text("#betti-rule")

    # move the scale slider to about 0.4 x diameter
    track = page.locator("#betti-scale .dash-slider-track")
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.78, box["y"] + box["height"] / 2)
    page.wait_for_function("new URLSearchParams(location.search).get('bscale') !== null")
    scale = float(parse_qs(urlparse(page.url).query)["bscale"][0])
    assert 0.3 < scale <= 0.5
    label = f"{scale:g} × diameter"
    page.wait_for_function("([g, t]) => document.querySelector(g).layout.title.text.includes(t)", arg=[betti, label])
    expected = requests.get(f"{api}/api/runs/{run_id}/betti", params={"scale": scale}, timeout=30).json()
    page.wait_for_function("t => document.querySelector('#betti-rule').innerText.includes(t)",
                           arg=expected["scale_rule"])
    drawn = page.evaluate(f"document.querySelector('{betti}').data.map((t) => Array.from(t.y))")
    assert drawn == [[row[j] for row in expected["betti"]] for j in range(len(drawn))]
    assert "0.25 × diameter" not in page.evaluate(f"document.querySelector('{betti}').layout.title.text")
    # the barcode marks the same scale
    page.wait_for_function("t => document.querySelector('#barcode-graph .js-plotly-plot').layout.annotations"
                           ".some((a) => a.text === t)", arg=f"Betti scale {scale:g}·diam")

    # persistent counts for another bar length
    page.fill("#betti-minlen", "0.3")
    page.press("#betti-minlen", "Enter")
    page.click("#betti-mode label:nth-child(2)")
    page.wait_for_function("g => document.querySelector(g).layout.title.text.includes('bars longer than 0.3 × diameter')",
                           arg=betti)
    expected = requests.get(f"{api}/api/runs/{run_id}/betti", params={"scale": scale, "min_length": 0.3},
                            timeout=30).json()
    page.wait_for_function("t => document.querySelector('#betti-rule').innerText.includes(t)",
                           arg=expected["scale_rule"])
    drawn = page.evaluate(f"document.querySelector('{betti}').data.map((t) => Array.from(t.y))")
    assert drawn == [[row[j] for row in expected["persistent"]] for j in range(len(drawn))]


def test_run_page_screenshot(page, urls, finished_run):
    _, ui = urls
    run_id, steps = finished_run
    page.set_viewport_size({"width": 1500, "height": 1000})
    page.goto(f"{ui}/runs/{run_id}?step={steps[-1]}")
    wait_view_at(page, steps[-1])
    page.wait_for_function("document.querySelector('#curve-loss .js-plotly-plot')?.data?.length > 0")
    page.mouse.move(5, 5)
    time.sleep(0.5)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "run-page.png"), full_page=True)
    assert (ARTIFACTS / "run-page.png").stat().st_size > 20_000


def test_invalid_lr_shows_the_api_message(page, urls):
    _, ui = urls
    page.goto(f"{ui}/new")
    page.wait_for_selector("#field-lr")
    page.fill("#field-lr", "-1")
    page.click("#submit-run")
    page.wait_for_function("document.querySelector('#error-lr')?.innerText.trim().length > 0")
    assert "lr must be > 0" in page.inner_text("#error-lr")
    assert urlparse(page.url).path == "/new"
    # other fields stay clean; fixing the value clears the message on the next submit
    assert page.inner_text("#error-width").strip() == ""
    # a number the browser cannot hold (1e400 overflows a double; the input then reports no value) gets
    # the field's own rule, not "Input should be a valid number"; an empty field says the same
    for text in ("1e400", ""):
        page.fill("#field-lr", text)
        page.click("#submit-run")
        page.wait_for_function("document.querySelector('#error-lr')?.innerText.includes('finite number')")
        assert page.inner_text("#error-lr").strip() == "lr must be a finite number > 0", text
        assert page.inner_text("#form-message").strip() == "Please fix 1 field."
        assert urlparse(page.url).path == "/new"
        # back to the API's message for a readable bad value
        page.fill("#field-lr", "-1")
        page.click("#submit-run")
        page.wait_for_function("document.querySelector('#error-lr')?.innerText.includes('lr must be > 0')")


def test_every_bad_field_shows_in_one_round(page, urls):
    """An unreadable field (empty epochs) and readable bad ones (width 0, lr -1): all three at once."""
    api, ui = urls
    runs_before = len(requests.get(f"{api}/api/runs", timeout=10).json())
    page.goto(f"{ui}/new")
    page.wait_for_selector("#field-lr")
    page.fill("#field-width", "0")
    page.fill("#field-lr", "-1")
    page.fill("#field-epochs", "")
    page.click("#submit-run")
    page.wait_for_function("document.querySelector('#form-message')?.innerText.includes('Please fix 3 fields')")
    assert page.inner_text("#error-width").strip() == "width must be between 1 and 8192"
    assert page.inner_text("#error-lr").strip() == "lr must be > 0 and finite"
    assert page.inner_text("#error-epochs").strip() == "epochs must be a whole number in 1 – 10000"
    assert urlparse(page.url).path == "/new"
    assert len(requests.get(f"{api}/api/runs", timeout=10).json()) == runs_before, "nothing was started"


def test_stop_button_stops_a_run(page, urls):
    api, ui = urls
    run_id = create_run(api, epochs=500, snapshot_every=50)
    try:
        page.goto(f"{ui}/runs/{run_id}")
        page.wait_for_function("['queued', 'running'].includes(document.querySelector('#status-badge')?.innerText)")
        page.wait_for_function("document.querySelector('#status-badge').innerText === 'running'", timeout=240_000)
        wait_for(lambda: api_run(api, run_id)["steps_done"] >= 200, 120, "the run to train 200 steps")
        assert page.is_enabled("#stop-button")
        page.click("#stop-button")
        page.wait_for_function("document.querySelector('#status-badge').innerText === 'stopped'", timeout=30_000)
        assert page.is_disabled("#stop-button")
        run = api_run(api, run_id)
        assert run["status"] == "stopped"
        # the curves end where the run stopped, not at its planned 14000 steps
        last = wait_all_analysed(api, run_id)[-1]
        end = max(run["steps_done"], last)
        assert 200 <= end < run["total_steps"] == 14000
        page.wait_for_function("""(e) => ['curve-loss', 'curve-kemp', 'curve-knn'].every((id) => {
            const gd = document.querySelector('#' + id + ' .js-plotly-plot');
            return gd && gd.layout && gd.layout.xaxis.range && gd.layout.xaxis.range[1] === e; })""", arg=end)
        assert page.evaluate("document.querySelector('#curve-loss .js-plotly-plot')._fullLayout.xaxis.range[1]") == end
    finally:
        requests.post(f"{api}/api/runs/{run_id}/stop", timeout=10)


def test_paper_pair_opens_compare_and_home_selection_compares(page, urls):
    api, ui = urls
    page.goto(f"{ui}/new")
    page.wait_for_selector("#field-epochs")
    choose_preset(page, preset_title(api, "figure-eight"))
    page.fill("#field-epochs", "1")
    page.fill("#field-snapshot_every", "5")
    page.click("#paper-pair")
    page.wait_for_url(re.compile(r".*/compare\?runs=[^,&]+,[^,&]+"))
    ids = parse_qs(urlparse(page.url).query)["runs"][0].split(",")
    assert len(ids) == 2
    lrs = sorted(api_run(api, i)["config"]["lr"] for i in ids)
    assert lrs[0] < lrs[1], "the pair is a small and a large learning rate"
    page.wait_for_selector("#page-compare .cmp-col")
    assert page.locator(".cmp-col").count() == 2
    for i in ids:  # the large lr may legitimately diverge; both keep their frames
        wait_run_status(api, i, ("finished", "diverged"))
        wait_all_analysed(api, i)
    # both columns draw a cloud of 1024 neurons and a barcode; one shared cursor
    page.wait_for_function("""() => [0, 1].every((k) => {
        const el = document.getElementById(JSON.stringify({index: k, type: 'cmp-cloud'}));
        const gd = el && el.querySelector('.js-plotly-plot');
        return gd && gd.data && gd.data[0] && gd.data[0].x.length === 1024; })""", timeout=60_000)
    assert page.inner_text("#current-step").strip().isdigit()
    overlay = page.evaluate("document.querySelector('#cmp-curve-loss .js-plotly-plot').data.map((t) => t.name)")
    assert any(ids[0][:8] in n for n in overlay) and any(ids[1][:8] in n for n in overlay)
    # align by fraction of training: its own URL
    page.click("#align-select label:nth-child(2)")
    page.wait_for_function("location.search.includes('align=fraction')")
    page.wait_for_function("document.querySelector('#current-step').innerText.includes('%')")

    # select the two runs on the home page and compare them
    page.click("a.nav-link[href='/']")
    page.wait_for_selector("#runs-table table")
    for i in ids:
        page.check(f"#runs-table tr[data-run-id='{i}'] input.run-select")
    page.wait_for_function("!document.querySelector('#compare-button').disabled")
    page.click("#compare-button")
    page.wait_for_url(re.compile(r".*/compare\?runs="))
    assert parse_qs(urlparse(page.url).query)["runs"][0].split(",") == ids
    page.wait_for_selector("#page-compare .cmp-col")
    assert page.locator(".cmp-col").count() == 2


def test_paper_pair_phase_exit_on_compare_and_run_pages(page, urls):
    """The figure-eight paper pair: the large lr's catapult leaves the topology-preserving phase
    (lr * K_emp > 1) around step 16, the small lr stays in it; the compare summary and the run
    header say so at a glance."""
    api, ui = urls
    page.goto(f"{ui}/new")
    page.wait_for_selector("#field-epochs")
    choose_preset(page, preset_title(api, "figure-eight"))
    page.fill("#field-epochs", "1")
    page.fill("#field-sharpness_every", "0")
    page.click("#paper-pair")
    page.wait_for_url(re.compile(r".*/compare\?runs=[^,&]+,[^,&]+"))
    ids = parse_qs(urlparse(page.url).query)["runs"][0].split(",")
    runs = {i: api_run(api, i) for i in ids}
    assert all(r["config"]["epochs"] == 1 and r["config"]["sharpness_every"] == 0 for r in runs.values())
    small, large = sorted(ids, key=lambda i: runs[i]["config"]["lr"])
    assert (runs[small]["config"]["lr"], runs[large]["config"]["lr"]) == (0.0025, 0.003)

    # one epoch of 28 steps, a snapshot every 2 steps: 15 frames each, all analysed
    for i in ids:
        wait_for(lambda i=i: (r := api_run(api, i))["status"] in ("finished", "diverged", "failed", "stopped")
                   and r["frames"] >= 15 and len(analysed_steps(api, i)) >= 15, 240, f"all 15 frames of run {i}")
        run = api_run(api, i)
        assert run["status"] in ("finished", "diverged"), f"run {i} ended {run['status']}: {run.get('error')}"

    # the summary table: one row per run; the large lr left the phase, the small one has no certified exit
    row = "#compare-summary tr[data-run-id='{}']"
    page.wait_for_selector(row.format(small))
    page.wait_for_function("""([r, s]) => {
        const big = document.querySelector(r), little = document.querySelector(s);
        return big && big.dataset.phaseExit && little && little.innerText.includes('η·K_emp < 1 throughout');
    }""", arg=[row.format(large), row.format(small)], timeout=60_000)
    assert page.locator("#compare-summary tbody tr[data-run-id]").count() == 2
    big_text = page.inner_text(row.format(large))
    exit_step = int(page.get_attribute(row.format(large), "data-phase-exit"))
    assert 12 <= exit_step <= 20, big_text
    assert re.search(rf"\bstep {exit_step}\b", page.inner_text(row.format(large) + " td.col-exit")), big_text
    assert "stayed" not in big_text and "0.003" in big_text
    assert "phase-left" in page.get_attribute(row.format(large), "class").split(), "the row that left is highlighted"
    assert "phase-left" not in page.get_attribute(row.format(small), "class").split()
    small_text = page.inner_text(row.format(small))
    assert "no exit certified (η·K_emp < 1 throughout)" in small_text and "0.0025" in small_text
    # the overlaid lr * K_emp curves carry the line at 1
    page.wait_for_function("document.querySelector('#cmp-curve-kemp .js-plotly-plot')?.data?.length >= 2")
    assert page.evaluate("document.querySelector('#cmp-curve-kemp .js-plotly-plot').layout.shapes"
                         ".some((s) => s.y0 === 1 && s.y1 === 1)")

    # the large lr's run page, reached from its row: the header says when it left the phase, and
    # every curve marks that step
    page.click(row.format(large) + " a.run-link")
    page.wait_for_url(re.compile(rf".*/runs/{large}"))
    page.wait_for_function("s => document.querySelector('#phase-indicator')?.innerText"
                           ".includes('left the topology-preserving phase at step ' + s)", arg=exit_step)
    assert "phase-warn" in page.get_attribute("#phase-indicator", "class").split()
    page.wait_for_function("""(s) => ['curve-loss', 'curve-kemp', 'curve-knn'].every((id) => {
        const gd = document.querySelector('#' + id + ' .js-plotly-plot');
        return gd && gd.layout && (gd.layout.shapes || []).some((sh) => sh.x0 === s && sh.x1 === s);
    })""", arg=exit_step)
    kemp_text = page.evaluate("document.querySelector('#curve-kemp .js-plotly-plot').layout.annotations"
                              ".map((a) => a.text).join(' | ')")
    assert "η* (η·K = 1)" in kemp_text

    # and the small lr's page says no exit was certified
    page.goto(f"{ui}/runs/{small}")
    page.wait_for_function("document.querySelector('#phase-indicator')?.innerText"
                           ".includes('no exit from the topology-preserving phase certified')")
    assert "phase-ok" in page.get_attribute("#phase-indicator", "class").split()


# A run's phase verdict from a synthetic frame index (the page's own TW.phaseStats / TW.phaseVerdict and
# the compare summary row, TW.summaryTable): `eks` are [step, lr * K_emp] of the analysed intervals.
PHASE_OF = """([id, run, eks]) => {
    const TW = window.topowatch;
    const c = TW.cache(id);
    c.run = Object.assign({id: id, preset: 'figure-eight', config: {lr: 0.003}, width: 1024, status: 'finished',
                           phase_exit: null, first_topology_change: null}, run);
    c.index = eks.slice().sort((a, b) => a[0] - b[0]).map(([s, v]) => ({step: s, epoch: 0, metrics: {eta_k_emp: v, k_emp: v / 0.003, interval_from: s - 2}}));
    c.steps = c.index.map((f) => f.step);
    c.pos = new Map(c.steps.map((s, i) => [s, i]));
    c.version++;
    const v = TW.phaseVerdict(TW.phaseStats(c));
    const text = (node) => node === null || node === undefined ? '' : typeof node !== 'object' ? String(node)
        : Array.isArray(node) ? node.map(text).join('') : text(node.props && node.props.children);
    const row = TW.summaryTable([id]).props.children[1].props.children[0];
    const cell = row.props.children.find((td) => td.props.className.startsWith('col-exit'));
    return {cls: v.cls, text: v.text, row: row.props.className.split(' '), cell: text(cell)};
}"""


def test_phase_verdict_waits_for_every_snapshot(page, urls):
    """The live frame is analysed first, so the early steps where a run leaves the preserving phase may
    come later: no green verdict (header or summary) until every received snapshot is analysed."""
    _, ui = urls
    page.goto(ui + "/")
    page.wait_for_selector("#runs-table")
    late = [[s, 0.0045] for s in range(76, 86, 2)]  # the 5 newest intervals of 43 snapshots
    every = [[0, None]] + [[s, 0.0045] for s in range(2, 86, 2)]

    pending = page.evaluate(PHASE_OF, ["p1", {"frames": 5, "snapshots": 43}, late])
    assert pending["cls"] == "pending", pending
    assert pending["text"] == "no exit in the 5 analysed intervals yet (max η·K_emp = 0.0045) · 38 snapshots still to analyse"
    assert "phase-pending" in pending["row"] and "phase-kept" not in pending["row"]
    assert pending["cell"] == "no exit in 5 analysed intervals yet · 38 snapshots still to analyse"

    done = page.evaluate(PHASE_OF, ["p2", {"frames": 43, "snapshots": 43}, every])
    assert done["cls"] == "ok" and "phase-kept" in done["row"], done
    assert done["text"] == "no exit from the topology-preserving phase certified (η·K_emp < 1 throughout, max 0.0045)"
    assert done["cell"] == "no exit certified (η·K_emp < 1 throughout)"

    # still training, every snapshot so far analysed: green, but only "so far"
    so_far = page.evaluate(PHASE_OF, ["p3", {"status": "running", "frames": 43, "snapshots": 43}, every])
    assert (so_far["cls"], so_far["cell"]) == ("ok", "no exit certified so far"), so_far
    assert "throughout" not in so_far["text"]

    # an exit is certain as soon as one interval is over 1, analysed or not all
    exit_ = page.evaluate(PHASE_OF, ["p4", {"frames": 6, "snapshots": 43}, late + [[16, 3.6]]])
    assert exit_["cls"] == "warn" and exit_["text"].startswith("left the topology-preserving phase at step 16")
    assert "phase-left" in exit_["row"] and exit_["cell"].startswith("step 16")
    api_exit = page.evaluate(PHASE_OF, ["p5", {"frames": 5, "snapshots": 43,
                                               "phase_exit": {"step": 16, "from_step": 14, "eta_k_emp": 3.6}}, late])
    assert api_exit["cls"] == "warn" and "phase-left" in api_exit["row"]

    # one neuron: no pairs, no K_emp (not "no interval analysed yet")
    single = page.evaluate(PHASE_OF, ["p6", {"width": 1, "frames": 43, "snapshots": 43}, [[s, None] for s in range(0, 86, 2)]])
    assert single["text"] == "topology-preserving phase: K_emp needs at least two neurons (this run has one, so no pairs)"
    assert single["cls"] == "pending" and "phase-kept" not in single["row"]

    # the digits pair's large rate: η·K_emp never over 1, but the 2-sphere broke at step 1190 — not green
    broke = page.evaluate(PHASE_OF, ["p7", {"frames": 43, "snapshots": 43, "first_topology_change": 1190}, every])
    assert broke["cls"] == "warn" and "phase-left" in broke["row"], broke
    assert broke["text"] == ("the topology changed at step 1190 (its Betti numbers left step 0's), "
                             "though η·K_emp stayed < 1 (max 0.0045)")
    assert broke["cell"] == "no exit certified; topology changed at step 1190"


def test_timeline_marks_name_the_steps_they_stand_at(page, urls):
    """The slider moves through analysed frames: evenly spaced marks are labelled only where the frames are
    evenly spaced in steps; a partly analysed run gets its two ends; never more than 6 marks."""
    _, ui = urls
    page.goto(ui + "/")
    page.wait_for_selector("#runs-table")
    marks = "([pos, frac]) => window.topowatch.timelineMarks(pos, frac)"
    assert page.evaluate(marks, [[168, 2788, 2882, 2978, 3072, 6048], False]) == {"0": "168", "5": "6048"}
    assert page.evaluate(marks, [list(range(0, 86, 2)), False]) == {
        "0": "0", "8": "16", "17": "34", "25": "50", "34": "68", "42": "84"}
    # the last snapshot of a run sits off the grid (84 after 80): still one evenly spaced axis
    assert len(page.evaluate(marks, [list(range(0, 85, 5)) + [84], False])) == 6
    assert len(page.evaluate(marks, [list(range(0, 200_000, 40)), False])) == 6
    assert page.evaluate(marks, [[0, 0.5, 1], True]) == {"0": "0%", "1": "50%", "2": "100%"}


def test_waiting_step_counts_the_earlier_snapshots_still_to_analyse(page, urls):
    """The backlog is back-filled oldest first: a step waits for the unanalysed snapshots before it."""
    _, ui = urls
    page.goto(ui + "/")
    page.wait_for_selector("#runs-table")
    ahead = """([analysed, step, waiting]) => window.topowatch.aheadOf({
        run: {config: {snapshot_every: 2}, snapshots: analysed.length + waiting, frames: analysed.length},
        pos: new Set(analysed)}, step)"""
    assert page.evaluate(ahead, [[0, 2, 18, 20], 10, 7]) == 3  # 4, 6 and 8 go first
    assert page.evaluate(ahead, [[0, 2, 18, 20], 4, 7]) == 0  # next in line
    assert page.evaluate(ahead, [[0, 20], 18, 3]) == 2  # never more than the others waiting


def test_run_header_wraps_at_narrow_widths(page, urls, finished_run):
    """The run header at phone, tablet and laptop widths: the title and "Compare with…" never overlap,
    and the phase box keeps the room to be read."""
    _, ui = urls
    run_id, _ = finished_run
    for width, height in ((390, 844), (800, 900), (1280, 900)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{ui}/runs/{run_id}")
        page.wait_for_function("document.querySelector('#phase-indicator .phase-text')?.innerText.length > 0")
        boxes = page.evaluate("""() => Object.fromEntries(['#run-title', '#run-compare-link', '#stop-button',
            '#phase-indicator', '.run-head'].map((s) => { const r = document.querySelector(s).getBoundingClientRect();
            return [s, {x: r.x, y: r.y, w: r.width, h: r.height}]; }))""")
        title, link, stop, phase, head = (boxes[k] for k in ("#run-title", "#run-compare-link", "#stop-button",
                                                              "#phase-indicator", ".run-head"))

        def overlap(a, b):
            return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]

        for other in (link, stop, phase):
            assert not overlap(title, other), (width, boxes)
        assert not overlap(phase, link) and not overlap(phase, stop), (width, boxes)
        assert phase["w"] >= 200, (width, boxes)
        for box in (title, link, stop, phase):  # nothing spills out of the header card
            assert head["x"] <= box["x"] and box["x"] + box["w"] <= head["x"] + head["w"] + 0.5, (width, boxes)
        assert page.evaluate("(() => { const e = document.querySelector('#phase-indicator'); return e.scrollWidth <= e.clientWidth + 1; })()")


def test_failed_run_without_frames_is_an_empty_state(page, urls):
    """The mnist preset with a data file that is not there fails before its first snapshot: Live is off,
    the projections are the 794-D neurons' (PCA/UMAP, never raw) and the page says why it is empty."""
    api, ui = urls
    run_id = create_run(api, preset="mnist", data_path="/nonexistent/mnist.npz", epochs=1)
    run = wait_run_status(api, run_id, ("failed",), timeout=120)
    assert run["frames"] == run["snapshots"] == 0
    page.goto(f"{ui}/runs/{run_id}")
    page.wait_for_selector("#page-run.no-frames")
    page.wait_for_function("document.querySelectorAll('#proj-select input').length > 0")
    assert page.evaluate("Array.from(document.querySelectorAll('#proj-select input')).map((i) => i.value)") == ["pca", "umap"]
    live = page.get_attribute("#live-toggle", "class").split()
    assert "off" in live and "on" not in live
    page.wait_for_function(f"""document.querySelector('{CLOUD}')?.layout?.annotations?.some((a) => a.text.startsWith('Run failed'))""")
    assert page.is_hidden(".timeline") and page.is_hidden("#curve-box-loss") and page.is_hidden("#dim-toggle")
    assert "the run recorded no snapshots" in page.inner_text("#phase-indicator")
    assert "ℝ⁷⁹⁴" in page.inner_text("#run-facts")


def test_umap_is_2d_even_when_the_url_asks_for_3d(page, urls):
    """Digits neurons live in R^74: PCA has 3 components (3-D offered), UMAP 2 (the 3-D toggle is off and
    disabled, the caption says 2-D, and the URL drops dim=3)."""
    api, ui = urls
    run_id = create_run(api, preset="digits", width=64, epochs=1, sharpness_every=0)
    wait_run_status(api, run_id, ("finished",))
    steps = wait_all_analysed(api, run_id)
    page.goto(f"{ui}/runs/{run_id}?proj=umap&dim=3")
    page.wait_for_function(f"document.querySelector('{CLOUD}')?.layout?.meta?.proj === 'umap'")
    page.wait_for_function("document.querySelector('#dim-toggle input').disabled")
    page.wait_for_function("!new URLSearchParams(location.search).has('dim')")
    assert not page.is_checked("#dim-toggle input")
    assert page.evaluate(f"document.querySelector('{CLOUD}').data[0].type") != "scatter3d"
    caption = page.inner_text("#cloud-caption")
    assert "UMAP 2-D" in caption and "3-D" not in caption
    assert shown_step(page) == steps[-1]
    # PCA has a third component: the toggle is offered and draws in 3-D
    page.click("#proj-select label:nth-child(1)")
    page.wait_for_function("!document.querySelector('#dim-toggle input').disabled")
    page.click("#dim-toggle label")
    page.wait_for_function(f"document.querySelector('{CLOUD}')?.data?.[0]?.type === 'scatter3d'")
    assert "PCA 3-D" in page.inner_text("#cloud-caption")
    page.wait_for_function("new URLSearchParams(location.search).get('dim') === '3'")


def test_single_neuron_run_says_why_it_has_no_k_emp(page, urls):
    api, ui = urls
    run_id = create_run(api, width=1, epochs=1)
    wait_run_status(api, run_id, ("finished",))
    wait_all_analysed(api, run_id)
    page.goto(f"{ui}/runs/{run_id}")
    page.wait_for_function("document.querySelector('#phase-indicator')?.innerText.includes('K_emp needs at least two neurons')")
    assert "no snapshot interval analysed yet" not in page.inner_text("#phase-indicator")
    assert "phase-ok" not in page.get_attribute("#phase-indicator", "class").split()


def test_compare_follows_the_analysis(page, urls):
    """A pair opened on the compare page while its snapshots are still being analysed: the summary gives
    no verdict while snapshots wait, and the position counter follows the frames that arrive."""
    api, ui = urls
    resp = requests.post(f"{api}/api/runs/pair", json={"preset": "figure-eight", "epochs": 8, "sharpness_every": 0},
                         timeout=10)
    assert resp.status_code == 201, resp.text
    ids = resp.json()["ids"]
    small = min(ids, key=lambda i: api_run(api, i)["config"]["lr"])
    page.goto(f"{ui}/compare?runs={','.join(ids)}")
    row = f"#compare-summary tr[data-run-id='{small}']"
    # while snapshots wait for analysis, no green verdict
    page.wait_for_function("""(r) => { const el = document.querySelector(r);
        return el && el.classList.contains('phase-pending') && el.innerText.includes('still to analyse'); }""",
                           arg=row, timeout=60_000)
    assert "phase-kept" not in page.get_attribute(row, "class").split()
    steps = set()
    for i in ids:
        wait_run_status(api, i, ("finished", "diverged"))
        steps |= set(wait_all_analysed(api, i))
    n = len(steps)
    page.wait_for_function("""([r, n]) => document.querySelector(r).classList.contains('phase-kept')
        && document.querySelector('#current-step-extra').innerText.startsWith('position ' + n + '/' + n)""",
                           arg=[row, n], timeout=30_000)
    assert "no exit certified (η·K_emp < 1 throughout)" in page.inner_text(row)
    assert page.inner_text("#current-step").strip() == str(max(steps))


def test_api_proxy_passes_errors_through(urls):
    """The same-origin proxy forwards status codes and JSON bodies unchanged."""
    _, ui = urls
    resp = requests.get(f"{ui}/api/runs/does-not-exist", timeout=10)
    assert resp.status_code == 404 and "detail" in resp.json()
    resp = requests.post(f"{ui}/api/runs", json={"preset": "figure-eight", "lr": -1}, timeout=10)
    assert resp.status_code == 422
    assert any("lr" in json.dumps(d.get("loc")) for d in resp.json()["detail"])
