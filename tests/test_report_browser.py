"""Real runs -> explain gallery, compare, per-run and side-by-side reports, opened in headless Chromium."""
import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from medfit.cli import main
from medfit.commands.pipeline import train_and_evaluate
from medfit.config import config_from_dict
from medfit.evaluate.protocols import external_validation

NPZ = "pneumoniamnist/pneumoniamnist_reconstructed.npz"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--remote-debugging-pipe", "--window-size=1200,1000"]


def chromium_binary() -> str:
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser"),
                      shutil.which("google-chrome")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("Chromium is missing: apt-get update && apt-get install -y chromium (done by .ci/run)")


class Chromium:
    """Headless Chromium over the DevTools pipe (fd 3 in, fd 4 out, NUL-separated JSON): no websocket library."""

    def __init__(self, user_data_dir: Path):
        to_read, self._to_write = os.pipe()
        self._from_read, from_write = os.pipe()

        def remap():  # in the child: the pipe ends become fds 3 and 4
            a, b = os.dup(to_read), os.dup(from_write)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen([chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
                                     preexec_fn=remap, close_fds=False, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(to_read)
        os.close(from_write)
        self._buf, self._id, self.events = b"", 0, []

    def _next(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._from_read], [], [], max(0.0, deadline - time.time()))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_read, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}, **({"sessionId": session} if session else {})}
        os.write(self._to_write, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            reply = self._next(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        deadline = time.time() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._next(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_write)
        os.close(self._from_read)


def open_page(browser: Chromium, page: Path, screenshot: Path) -> dict:
    """Load a file, return its images' load state, console/log errors and text; save a full-page screenshot."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        browser.send(f"{domain}.enable", session=session)
    browser.events.clear()
    browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
    browser.wait_for("Page.loadEventFired")
    state = browser.send("Runtime.evaluate", {"returnByValue": True, "expression": (
        "JSON.stringify({images: [...document.images].map(i => ({ok: i.complete && i.naturalWidth > 0,"
        " w: i.naturalWidth, alt: i.alt})), text: document.body.innerText})")}, session=session)
    metrics = browser.send("Page.getLayoutMetrics", session=session)
    size = metrics["cssContentSize"]
    shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
        "x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1}}, session=session)
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    browser.send("Target.closeTarget", {"targetId": target})
    return {**json.loads(state["result"]["value"]), "errors": errors}


def run_config(shared_data, tmp_path, name, seed, lr):
    return config_from_dict({
        "name": name, "seed": seed, "output_dir": str(tmp_path / "runs"),
        "data": {"source": "medmnist", "root": str(shared_data / NPZ), "image_size": 28, "limit_per_split": 200,
                 "val_fraction": 0.2},
        "model": {"name": "test_resnet"},
        "train": {"epochs": 2, "batch_size": 64, "optim": {"lr": lr}, "logger": "csv", "progress_bar": False},
        "evaluate": {"bootstrap": 100, "temperature_scaling": True},
    })


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    # the npz is label-sorted: pseudo-site 1 (the lowest ids) holds one class, which the pre-flight refuses to train on
    a = Path(external_validation(run_config(shared_data, tmp, "a", 0, 0.003), ["pseudo-site-2", "pseudo-site-3"], None,
                                 train_and_evaluate, pseudo_sites=3)["run"])
    b = train_and_evaluate(run_config(shared_data, tmp, "b", 1, 0.01)).path
    return tmp, a, b


def test_explain_compare_and_reports_render_in_chromium(runs, capsys):
    tmp, a, b = runs
    image = f"{Path(__file__).resolve().parents[2] / 'shared' / 'data' / NPZ}::test_images::0"
    assert main(["explain", str(a), image, "--gallery", "--per-group", "2"]) == 0
    out = capsys.readouterr().out
    assert "p(1) = " in out and (a / "explain").is_dir() and len(list((a / "explain").glob("*.png"))) == 1
    gallery = json.loads((a / "plots" / "saliency" / "gallery.json").read_text())
    assert {c["group"] for c in gallery["cases"]} <= {"TP", "FP", "TN", "FN"} and len(gallery["cases"]) >= 6

    assert main(["compare", str(a), str(b), "--out", str(tmp / "cmp.json")]) == 0
    cmp = json.loads((tmp / "cmp.json").read_text())
    test = cmp["splits"]["test"]
    assert test["n"] > 50 and test["p_value"] <= 1 and "DeLong" in capsys.readouterr().out

    assert main(["report", str(a), str(b), "--out", str(tmp / "side.html")]) == 0
    html = (a / "report.html").read_text()
    assert "Per site" in html and "pseudo-site-2" in html and "Saliency gallery" in html and "Discrimination and calibration" in html

    browser = Chromium(tmp / "chromium-profile")
    try:
        page = open_page(browser, a / "report.html", tmp / "report_a.png")
        side = open_page(browser, tmp / "side.html", tmp / "side.png")
    finally:
        browser.close()
    assert page["errors"] == [] and side["errors"] == []
    # ROC, confusions, training, ROC band, PR, calibration, and the saliency overlays: all decoded by the browser
    assert len(page["images"]) >= 6 + len(gallery["cases"]) and all(i["ok"] for i in page["images"]), page["images"]
    assert any("calibration" in i["alt"] for i in page["images"]) and any("band" in i["alt"] for i in page["images"])
    assert sum(i["alt"].startswith(("TP ", "FP ", "TN ", "FN ")) for i in page["images"]) == len(gallery["cases"])
    assert "external" in page["text"] and "pseudo-sites: patient-id ranges" in page["text"]
    assert side["images"] and all(i["ok"] for i in side["images"]) and "Paired DeLong" in side["text"]
    for shot in (tmp / "report_a.png", tmp / "side.png"):
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
