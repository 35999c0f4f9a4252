"""Sphinx extension: the HTML readers get, offline and free of console errors.

1. MathJax 3 is served from the built book instead of a CDN (below).
2. Each page lists every script once. Sphinx 7.4 keeps an inline script added after the
   builder started (filename None) and its copy from the registry (filename '') as two
   scripts, so sphinx-thebe's ``const THEBE_JS_URL = ...`` ran twice and every page threw
   "Identifier 'THEBE_JS_URL' has already been declared" (found by tests/test_rendered.py).

Offline MathJax:

The MathJax 3.2.2 files come from a package registry: the PyPI package
``django-static-mathjax`` (pinned in requirements.txt; it has no dependencies and
ships MathJax's ``es5`` bundle under ``mathjax/static/mathjax/es5``). This
extension copies that ``es5`` folder to ``<html>/mathjax/es5`` through Sphinx's
``html_extra_path`` (not ``_static/``, whose every ``.js`` file Sphinx would inject
into every page). ``mathjax_path`` in ``_config.yml`` points at it; relative paths
there are resolved against ``_static/``, hence its ``../``.

If the package is missing the build stops with an error instead of quietly
falling back to a CDN.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.errors import ExtensionError

#: The MathJax version the book is tested with (the files' own version is checked).
MATHJAX_VERSION = "3.2.2"


def mathjax_es5() -> Path:
    """The installed MathJax ``es5`` folder (raises ExtensionError when absent)."""
    try:
        import mathjax  # the django-static-mathjax package
    except ImportError as err:
        raise ExtensionError(
            "bagdrop._book_html: MathJax is not installed; run `make setup` "
            "(requirements.txt pins django-static-mathjax)") from err
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-mml-chtml.js").is_file():
        raise ExtensionError(f"bagdrop._book_html: no MathJax es5 bundle in {es5}")
    return es5


def _stage(app, config) -> None:
    es5 = mathjax_es5()
    head = (es5 / "startup.js").read_text(encoding="utf-8", errors="replace")
    if f'"{MATHJAX_VERSION}"' not in head and f"'{MATHJAX_VERSION}'" not in head:
        raise ExtensionError(f"bagdrop._book_html: {es5} is not MathJax {MATHJAX_VERSION}")
    # html_extra_path copies the *contents* of each folder into the output root, so
    # stage <doctreedir>/../mathjax-extra/mathjax/es5 and list mathjax-extra.
    staging = Path(app.doctreedir).parent / "mathjax-extra"
    target = staging / "mathjax" / "es5"
    stamp = staging / "version.txt"
    if not (stamp.is_file() and stamp.read_text() == f"{MATHJAX_VERSION} {es5}"):
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(es5, target)
        stamp.write_text(f"{MATHJAX_VERSION} {es5}")
    config.html_extra_path = [*config.html_extra_path, str(staging)]


def _check_path(app, config) -> None:
    if "://" in config.mathjax_path or not config.mathjax_path.startswith("../mathjax/es5/"):
        raise ExtensionError(
            f"bagdrop._book_html: mathjax_path must point at the vendored copy "
            f"(../mathjax/es5/...), got {config.mathjax_path!r}")


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated script entries (same file or inline body, same attributes)."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        key = (str(getattr(js, "filename", js) or ""),
               tuple(sorted((getattr(js, "attributes", None) or {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    # in place: the list is the builder's, and handlers that run later (sphinx.ext.mathjax)
    # append to it
    scripts[:] = unique


def setup(app):
    app.connect("config-inited", _stage)
    app.connect("config-inited", _check_path)
    # early: html-page-context stops at the first handler that returns a template name
    app.connect("html-page-context", _unique_scripts, priority=100)
    return {"version": MATHJAX_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
