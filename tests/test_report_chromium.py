"""Open the generated page in headless Chromium, as a reader would: it loads, logs nothing to the
console, holds the expected tables, and its screenshot is not blank. Skipped where no Chromium binary
exists, except under BENCH_REQUIRE_CHROMIUM=1: .ci/run installs Debian's `chromium` and sets it, so in
CI a missing browser fails the test instead of hiding it."""

import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from bench.report.build import Options, write_report
from bench.report.synthetic import make_grid

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
REQUIRE_ENV = "BENCH_REQUIRE_CHROMIUM"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


class _Census(HTMLParser):
    """Counts what the browser's DOM holds: tables by class, rows per comparison table, images, scripts."""

    def __init__(self):
        super().__init__()
        self.tables, self.rows, self.images, self.scripts, self.h1 = {}, [], 0, 0, ""
        self._in_cmp = self._in_body = self._in_h1 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            cls = a.get("class", "")
            self.tables[cls] = self.tables.get(cls, 0) + 1
            self._in_cmp = cls == "comparison"
            if self._in_cmp:
                self.rows.append(0)
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_cmp and self._in_body:
            self.rows[-1] += 1
        elif tag == "img" and a.get("src", "").startswith("data:image/png;base64,"):
            self.images += 1
        elif tag == "script":
            self.scripts += 1
        elif tag == "h1":
            self._in_h1 = True

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_cmp = False
        elif tag == "tbody":
            self._in_body = False
        elif tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        if self._in_h1:
            self.h1 += data


def browser() -> str:
    """The Chromium binary; without one, a skip, or a failure where CI asks for the browser."""
    found = next((b for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        why = f"no chromium binary ({', '.join(BROWSERS)} not on PATH; apt-get install chromium)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {why}")
        pytest.skip(why)
    return found


def _browse(binary, url, *extra):
    res = subprocess.run([binary, *FLAGS, *extra, url], capture_output=True, text=True, timeout=120)
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    return res, console


@pytest.mark.parametrize("required,outcome", [("1", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_browser_fails_where_ci_requires_it_and_skips_elsewhere(monkeypatch, required, outcome):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv(REQUIRE_ENV, required)
    with pytest.raises(outcome, match="no chromium binary"):
        browser()


def test_page_opens_in_headless_chromium(tmp_path):
    binary = browser()
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><script>console.error("planted-error")</script></body></html>')
    _, console = _browse(binary, bad.as_uri(), "--dump-dom")
    assert any("planted-error" in line for line in console)  # the console check can see an error

    out = tmp_path / "report"
    write_report(make_grid(tmp_path / "results", "page", configs=4, seeds=5, evals=8), out, Options(formats=("html",)))
    page = (out / "index.html").as_uri()
    res, console = _browse(binary, page, "--dump-dom")
    assert res.returncode == 0 and console == []
    dom = _Census()
    dom.feed(res.stdout)
    assert dom.h1 == "GAN Bench report: page" and dom.scripts == 0
    assert dom.tables["comparison"] == 3  # final FD@10k, curve FD@2k, curve modes
    assert dom.rows == [4, 4, 4]  # one row per configuration
    assert dom.tables["stability"] == 1 and dom.tables["versions"] == 1
    assert dom.images >= 4 + 4  # curves x2, final scores, losses; one sample grid per configuration

    shot = tmp_path / "shot.png"
    res, console = _browse(binary, page, f"--screenshot={shot}", "--window-size=1200,2000")
    assert res.returncode == 0 and console == [] and shot.is_file()
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert (pixels.min(axis=2) < 0.9).mean() > 0.02  # text and tables drawn, not a blank page


def test_the_contents_line_wraps_inside_a_1400_px_window(tmp_path):
    """The contents line of a report with many metrics, laid out by the browser with the page's own CSS:
    a planted script records whether it is wider than its box. Names without spaces (`precision_real`)
    once ran off the right edge, since links written side by side left the line no break point."""
    from types import SimpleNamespace

    from bench.report.render import CSS, toc

    binary = browser()
    names = ["fd", "fd_real", "kid", "kid_real", "precision", "recall", "f_score", "precision_real", "recall_real",
             "density", "coverage", "msssim", "msssim_real", "msssim_gap", "ndb", "ndb_jsd", "ndb_real", "class_acc",
             "modes_covered", "hq_fraction", "kl_modes", "jsd_modes", "grad_norm_d", "grad_norm_g", "loss_d", "loss_g"]
    report = SimpleNamespace(published=None, headlines={"0": None}, warnings=["w"],
                             metric_groups=lambda: [(n, None) for n in names])
    probe = ("<script>const n = document.querySelector('nav.toc');"
             "document.body.setAttribute('data-fits', String(n.scrollWidth <= n.clientWidth"
             " && n.getBoundingClientRect().right <= window.innerWidth));</script>")
    page = tmp_path / "nav.html"
    page.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>{CSS}</style></head><body>'
                    f"<h1>GAN Bench report: wide</h1>{toc(report)}{probe}</body></html>", encoding="utf-8")
    for width in (1400, 700):
        res, console = _browse(binary, page.as_uri(), "--dump-dom", f"--window-size={width},900")
        assert res.returncode == 0 and console == []
        assert 'data-fits="true"' in res.stdout, (width, res.stdout[:300])
