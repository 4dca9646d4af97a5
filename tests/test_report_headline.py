"""The first screen answers the grid's question: in headless Chromium at 1400 x 900 the headline
table (baseline row, real-data ceiling line, a significance mark) and the verdict sentences of a
planted grid lie inside the viewport; report.md and headline.tex print the same cells as the page.
Launches Chromium the way test_report_chromium.py does (its browser() and _browse): skipped where
no binary exists, failed instead under BENCH_REQUIRE_CHROMIUM=1 (CI)."""

import json
import re
from html.parser import HTMLParser

import pytest
from test_report_chromium import _browse, browser

from bench.report.build import Options, write_report
from bench.report.synthetic import make_planted

VIEW_W, VIEW_H = 1400, 900
PROBE = """<script>
window.addEventListener('load', () => {
  const box = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
  const all = s => Array.from(document.querySelectorAll(s)).map(box);
  const out = {table: all('table.headline'), base: all('table.headline tr.base'), ceiling: all('table.headline tr.ceiling'),
               sig: all('table.headline .sig'), verdicts: all('ul.verdicts li'), viewport: [innerWidth, innerHeight]};
  const pre = document.createElement('pre'); pre.id = 'geometry'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


class _Headline(HTMLParser):
    """Rows of the first table.headline, each a list of cell texts."""

    def __init__(self):
        super().__init__()
        self.rows, self._depth, self._cell = [], 0, None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and ("class", "headline") in attrs and not self.rows:
            self._depth = 1
        elif self._depth and tag == "tr":
            self.rows.append([])
        elif self._depth and tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if self._depth and tag in ("td", "th"):
            self.rows[-1].append(self._cell.strip())
            self._cell = None
        elif tag == "table":
            self._depth = 0

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("headline")
    out = root / "report"
    write_report(make_planted(root / "results", "ls"), out, Options(formats=("html", "md", "tex")))
    return out


def _inside(box):
    left, top, right, bottom = box
    return left >= 0 and top >= 0 and right <= VIEW_W and bottom <= VIEW_H


def test_headline_and_verdicts_fill_the_first_screen(planted, tmp_path):
    binary = browser()  # a skip without Chromium; a failure under BENCH_REQUIRE_CHROMIUM=1, as in CI
    page = tmp_path / "probe.html"
    page.write_text((planted / "index.html").read_text().replace("</body>", PROBE + "</body>"))
    res, console = _browse(binary, page.as_uri(), "--dump-dom", f"--window-size={VIEW_W},{VIEW_H}", "--virtual-time-budget=5000")
    assert res.returncode == 0 and console == []
    found = re.search(r'<pre id="geometry">(.*?)</pre>', res.stdout, re.S)
    assert found, "the probe did not run"
    geo = json.loads(found.group(1).replace("&quot;", '"'))
    assert geo["viewport"][0] == VIEW_W  # the layout width; boxes are measured from the top of the page
    assert len(geo["table"]) == 1 and _inside(geo["table"][0])
    assert len(geo["base"]) == 1 and _inside(geo["base"][0])  # the baseline row
    assert len(geo["ceiling"]) == 1 and _inside(geo["ceiling"][0])  # the real-data ceiling line
    assert len(geo["sig"]) == 3 and all(_inside(b) for b in geo["sig"])  # one_sided beats off on all three
    assert len(geo["verdicts"]) == 2 and all(_inside(b) for b in geo["verdicts"])  # one sentence per configuration


def _unescape_tex(cell: str) -> str:
    for tex, plain in [("$-$", "−"), (r"$\uparrow$", "↑"), (r"$\downarrow$", "↓"), (r"\%", "%"), (r"\_", "_"),
                       (r"\textless{}", "<"), ("--", "–")]:
        cell = cell.replace(tex, plain)
    return cell.strip()


def test_markdown_and_latex_hold_the_numbers_of_the_page(planted):
    html = _Headline()
    html.feed((planted / "index.html").read_text())
    page = html.rows
    assert page[0][:4] == ["configuration", "modes@2500 ↑", "HQ@2500 ↑", "KL-modes@2500 ↓"]
    assert page[1][0] == "off (baseline)" and page[-1][0] == "real data (ceiling)"
    assert page[2][1].endswith("*")

    md = (planted / "report.md").read_text().splitlines()
    start = md.index(next(line for line in md if line.startswith("| configuration | modes@2500")))
    md_rows = [[c.strip().replace("\\*", "*") for c in line.strip("|").split(" | ")]
               for line in md[start:start + len(page) + 1] if not line.startswith("|---")]
    md_rows = [[row[0].strip("*")] + row[1:] for row in md_rows]  # bold baseline, italic ceiling
    assert md_rows == page

    tex = (planted / "headline.tex").read_text()
    body = tex.split("\\toprule")[1].split("\\bottomrule")[0]
    tex_rows = [[_unescape_tex(c) for c in line.strip().removesuffix("\\\\").split("&")]
                for line in body.splitlines() if "&" in line]
    assert tex_rows == page
    assert "\\midrule\nreal data (ceiling)" in tex  # the ceiling sits below its own rule
