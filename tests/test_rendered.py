"""The rendered book as a reader sees it: every page of ``_build/html`` in headless Chromium.

Run by ``make test-rendered``, the last step of ``make test`` (after ``make build``).
The pages are served on 127.0.0.1 and opened in Debian's ``chromium`` (``make
browser-deps`` installs it), driven by Playwright through ``executable_path``; no browser
is downloaded. Every request that leaves 127.0.0.1 is blocked and fails the page: the
book must read offline. For each page the test asserts that

- it loads with no JavaScript error, console error or failed request;
- every ``<img>`` has loaded (``naturalWidth > 0``), and every figure in the text has an
  opaque background, so it stays readable in the dark theme too;
- every equation was typeset by MathJax (each ``.math`` element holds an
  ``mjx-container``, no MathJax error, no raw ``$...$``, ``\\(`` or ``$$`` left in the text);
- every citation links to a bibliography entry that is present (on the page itself when
  the page has a bibliography: each chapter lists its own references), and every
  bibliography on the page has entries;
- every internal link resolves to a file of the build, and its anchor exists there.

A full-page screenshot of each page goes to ``_build/screenshots/`` (and, for pages with
figures, one in the dark theme to ``_build/screenshots/dark/``) for review.

Outside ``make test-rendered`` (e.g. the plain ``pytest tests`` step that runs before the
book is built) the module is skipped. Under it, a missing build or browser fails.
``BAGDROP_HTML`` and ``BAGDROP_SCREENSHOTS`` point it at another build (e.g. a throwaway
book) and screenshot folder.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("BAGDROP_HTML", ROOT / "_build" / "html")).resolve()
SHOTS = Path(os.environ.get("BAGDROP_SCREENSHOTS", ROOT / "_build" / "screenshots")).resolve()
#: Folders of the build that hold assets, not pages.
ASSET_DIRS = {"_static", "_sources", "_images", "_downloads", "mathjax", "jupyter_execute"}
#: Seconds to wait for MathJax, per page.
MATHJAX_TIMEOUT_S = 30

if os.environ.get("BAGDROP_RENDERED_TEST") != "1":
    pytest.skip("the browser test runs in `make test-rendered`, after the book is built",
                allow_module_level=True)


def chromium_path() -> str | None:
    """Debian's chromium binary (the launcher script's target when present)."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def book_pages() -> list[Path]:
    if not HTML.is_dir():
        return []
    return sorted(p for p in HTML.rglob("*.html")
                  if not ASSET_DIRS & set(p.relative_to(HTML).parts[:-1]))


PAGES = book_pages()
PAGES_WITH_IMAGES = [p for p in PAGES if "<img" in p.read_text(encoding="utf-8", errors="replace")]
REDIRECT = re.compile(r'<meta http-equiv="Refresh" content="0; url=([^"]+)"', re.I)


def test_the_book_is_built_and_chromium_is_installed():
    assert (HTML / "index.html").is_file(), f"no book at {HTML}: run `make build` first"
    assert len(PAGES) >= 3, f"only {len(PAGES)} pages in {HTML}"
    assert chromium_path(), "no chromium: run `make browser-deps` (apt-get install chromium)"


def test_the_book_holds_the_toc_pages_and_nothing_else():
    """No stray sources (e.g. READMEs under .venv) were built; every toc entry was."""
    from test_book import toc_files
    built = {p.relative_to(HTML).with_suffix("").as_posix() for p in PAGES}
    built -= {"index", "search", "genindex"}
    assert built == set(toc_files()), (
        f"built but not in _toc.yml: {sorted(built - set(toc_files()))[:10]}; "
        f"in _toc.yml but not built: {sorted(set(toc_files()) - built)}")


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def server():
    """Serves HTML on an ephemeral port of 127.0.0.1; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        pytest.fail("no chromium: run `make browser-deps` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True)
        try:
            yield b
        finally:
            b.close()


class Recorder:
    """Everything that went wrong while a page loaded."""

    def __init__(self, base: str):
        self.base = base
        self.problems: list[str] = []

    def route(self, route):
        url = route.request.url
        if url.startswith(self.base) or url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            self.problems.append(f"loads from the network: {url}")
            route.abort()

    def console(self, msg):
        if msg.type == "error":
            self.problems.append(f"console error: {msg.text} ({msg.location.get('url', '')})")

    def attach(self, page):
        page.route("**/*", self.route)
        page.on("console", self.console)
        page.on("pageerror", lambda err: self.problems.append(f"JavaScript exception: {err}"))
        page.on("requestfailed", lambda req: req.url.startswith(self.base) and self.problems.append(
            f"request failed: {req.url} ({req.failure})"))
        page.on("response", lambda res: res.status >= 400 and self.problems.append(
            f"HTTP {res.status}: {res.url}"))


# ------------------------------------------------------------------- in-page checks (JS)
WAIT_FOR_MATHJAX = """async (timeoutMs) => {
  if (!document.querySelector('.math')) return 'no math';
  const t0 = Date.now();
  while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
    if (Date.now() - t0 > timeoutMs) return 'MathJax did not start';
    await new Promise(r => setTimeout(r, 50));
  }
  await MathJax.startup.promise;
  return 'typeset';
}"""

MATH_REPORT = r"""() => {
  const math = [...document.querySelectorAll('.math')];
  const untypeset = math.filter(m => !m.querySelector('mjx-container'))
                        .map(m => m.textContent.trim().slice(0, 80));
  const errors = [...document.querySelectorAll('mjx-merror')]
                   .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 80));
  // raw TeX left in the visible text (outside code, scripts and typeset math)
  const skip = 'pre, code, script, style, textarea, mjx-container, .highlight, .linenos';
  const raw = [];
  const re = /\$\$|\\\(|\\\[|\$[^$\n]*[\\^_{][^$\n]*\$/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (el && !el.closest(skip) && re.test(n.textContent)) raw.push(n.textContent.trim().slice(0, 80));
  }
  return {n_math: math.length, n_typeset: document.querySelectorAll('mjx-container').length,
          untypeset, errors, raw};
}"""

IMAGE_REPORT = """async () => {
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null :
      new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
  return imgs.map(i => {
    const r = {src: i.currentSrc || i.src, loaded: i.complete && i.naturalWidth > 0,
               figure: !!i.closest('article.bd-article'), opaque: null};
    if (r.loaded && r.figure) {
      // every corner of the image must be opaque: a transparent background puts dark
      // axis labels on the dark theme's dark page
      const c = document.createElement('canvas');
      c.width = i.naturalWidth; c.height = i.naturalHeight;
      const ctx = c.getContext('2d');
      ctx.drawImage(i, 0, 0);
      const w = c.width - 1, h = c.height - 1;
      const corners = [[0, 0], [w, 0], [0, h], [w, h]].map(([x, y]) => ctx.getImageData(x, y, 1, 1).data);
      r.opaque = corners.every(px => px[3] === 255);
      r.corners = corners.map(px => Array.from(px));
    }
    return r;
  });
}"""

CITATION_REPORT = """() => {
  const cites = [...document.querySelectorAll('.bibtex-citation a[href]')].map(a => a.href);
  const bibs = [...document.querySelectorAll('[role="doc-biblioentry"]')];
  const containers = [...document.querySelectorAll('.bibliography, div.docutils.container')]
      .filter(c => c.querySelector('[role="doc-biblioentry"]') || c.classList.contains('bibliography'));
  return {cites, n_entries: bibs.length,
          empty_entries: bibs.filter(b => !b.textContent.trim()).map(b => b.id),
          empty_bibliographies: containers.filter(c => !c.querySelector('[role="doc-biblioentry"]')).length};
}"""

LINKS = "() => [...document.querySelectorAll('a[href]')].map(a => [a.getAttribute('href'), a.href])"


# ------------------------------------------------------------------ static link checking
@functools.lru_cache(maxsize=None)
def anchors_of(path: Path) -> frozenset[str]:
    """Every id and name attribute of an HTML file."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return frozenset(re.findall(r'\b(?:id|name)="([^"]+)"', text))


@functools.lru_cache(maxsize=None)
def biblio_ids(path: Path) -> frozenset[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return frozenset(re.findall(r'id="([^"]+)"\s+role="doc-biblioentry"', text))


def local_target(url: str, base: str) -> tuple[Path, str] | None:
    """(file under HTML, fragment) of a URL served from ``base``; None for other URLs."""
    if not url.startswith(base):
        return None
    parts = urlsplit(url)
    rel = unquote(parts.path)[len(urlsplit(base).path):]
    path = HTML / rel
    if rel == "" or rel.endswith("/"):
        path = path / "index.html"
    return path, unquote(parts.fragment)


def broken_links(links: list[list[str]], base: str) -> list[str]:
    broken = []
    for raw, absolute in links:
        if raw.startswith(("javascript:", "mailto:")) or raw == "#":
            continue
        target = local_target(absolute, base)
        if target is None:
            continue  # external: not fetched (the book reads offline)
        path, fragment = target
        if not path.is_file():
            broken.append(f"{raw} -> missing file {path.relative_to(HTML)}")
        elif fragment and path.suffix == ".html" and fragment not in anchors_of(path):
            broken.append(f"{raw} -> no anchor #{fragment} in {path.relative_to(HTML)}")
    return sorted(set(broken))


def screenshot_path(rel: str, dark: bool = False) -> Path:
    out = SHOTS / ("dark" if dark else "") / Path(rel).with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


# --------------------------------------------------------------------------- the test
@pytest.mark.parametrize("page_path", PAGES, ids=lambda p: p.relative_to(HTML).as_posix())
def test_page_as_a_reader_sees_it(page_path, server, browser):
    rel = page_path.relative_to(HTML).as_posix()
    source = page_path.read_text(encoding="utf-8", errors="replace")
    redirect = REDIRECT.search(source)
    if redirect:  # e.g. index.html -> intro.html: the target must exist
        target = (page_path.parent / redirect.group(1)).resolve()
        assert target.is_file(), f"{rel} redirects to missing {redirect.group(1)}"
        return

    problems: list[str] = []
    recorder = Recorder(server)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        recorder.attach(page)
        page.goto(server + rel, wait_until="load")
        state = page.evaluate(WAIT_FOR_MATHJAX, MATHJAX_TIMEOUT_S * 1000)
        math = page.evaluate(MATH_REPORT)
        images = page.evaluate(IMAGE_REPORT)
        cites = page.evaluate(CITATION_REPORT)
        links = page.evaluate(LINKS)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=screenshot_path(rel), full_page=True)
    finally:
        context.close()

    # MathJax
    if state != "no math":
        if state != "typeset":
            problems.append(state)
        if math["untypeset"]:
            problems.append(f"equations not typeset by MathJax: {math['untypeset'][:5]}")
        if not math["n_typeset"]:
            problems.append("the page has math but no mjx-container")
    if math["errors"]:
        problems.append(f"MathJax errors: {math['errors'][:5]}")
    if math["raw"]:
        problems.append(f"raw TeX left in the text: {math['raw'][:5]}")
    # images
    problems += [f"image did not load: {i['src']}" for i in images if not i["loaded"]]
    problems += [f"figure with a transparent background (unreadable in the dark theme): "
                 f"{i['src']} corners {i['corners']}" for i in images if i["opaque"] is False]
    # citations and bibliography
    own_entries = biblio_ids(page_path)
    for href in cites["cites"]:
        target = local_target(href, server)
        if target is None or not target[0].is_file() or target[1] not in biblio_ids(target[0]):
            problems.append(f"citation {href} does not link to a bibliography entry")
        elif own_entries and target[0].resolve() != page_path.resolve():
            # a chapter lists its own references: its citations must land there
            problems.append(f"citation {href} links to another page's bibliography")
    if cites["empty_entries"] or cites["empty_bibliographies"]:
        problems.append(f"empty bibliography entries {cites['empty_entries']} or bibliographies "
                        f"({cites['empty_bibliographies']})")
    # links, and what the browser reported
    problems += [f"broken internal link: {b}" for b in broken_links(links, server)]
    problems += recorder.problems

    assert not problems, f"{rel}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("page_path", PAGES_WITH_IMAGES, ids=lambda p: p.relative_to(HTML).as_posix())
def test_figures_in_the_dark_theme(page_path, server, browser):
    """Pages with figures, once more in the dark theme: figures keep an opaque background."""
    rel = page_path.relative_to(HTML).as_posix()
    recorder = Recorder(server)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    try:
        page = context.new_page()
        recorder.attach(page)
        page.goto(server + rel, wait_until="load")
        mode = page.evaluate("() => document.documentElement.dataset.theme")
        images = page.evaluate(IMAGE_REPORT)
        page.evaluate(WAIT_FOR_MATHJAX, MATHJAX_TIMEOUT_S * 1000)
        page.screenshot(path=screenshot_path(rel, dark=True), full_page=True)
    finally:
        context.close()
    assert mode == "dark", f"{rel}: the theme did not follow the reader's dark preference ({mode!r})"
    figures = [i for i in images if i["figure"]]
    bad = [i["src"] for i in figures if not i["loaded"] or not i["opaque"]]
    assert not bad, f"{rel}: figures unreadable in the dark theme (not loaded or transparent): {bad}"
    assert not recorder.problems, f"{rel}:\n  " + "\n  ".join(recorder.problems)
