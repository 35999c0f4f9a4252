"""Launch buttons go to the right place: this repository, branch main, an existing notebook.

The checks of a built page need ``_build/html`` and run in ``make test-rendered`` (after
the build, ``BAGDROP_RENDERED_TEST=1``), where a missing build fails. The checks of the
Binder environment run everywhere.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("BAGDROP_HTML", ROOT / "_build" / "html")).resolve()
REPO = "bagdrop/bagdrop"
BRANCH = "main"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def tracked(path: str) -> bool:
    """``path`` (relative to the repository root) is a file git tracks, or, outside a
    git checkout, a file that exists."""
    if not (ROOT / path).is_file():
        return False
    if not (ROOT / ".git").exists():
        return True
    done = subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=ROOT,
                          capture_output=True, check=False)
    return done.returncode == 0


def launch_links(page: Path) -> dict[str, list[str]]:
    hrefs = re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8"))
    return {"binder": [h for h in hrefs if h.startswith("https://mybinder.org/")],
            "colab": [h for h in hrefs if h.startswith("https://colab.research.google.com/")]}


def notebook_pages() -> list[tuple[Path, str]]:
    """(built page, notebook path in the repository) for every notebook of the book."""
    pages = []
    for nb in sorted((ROOT / "chapters").glob("*.ipynb")):
        rel = nb.relative_to(ROOT).as_posix()
        pages.append((HTML / Path(rel).with_suffix(".html"), rel))
    return pages


# ------------------------------------------------------------------ configuration
def test_config_points_launch_buttons_at_this_repository():
    assert CONFIG["repository"]["url"] == f"https://github.com/{REPO}"
    assert CONFIG["repository"]["branch"] == BRANCH
    launch = CONFIG["launch_buttons"]
    assert launch["binderhub_url"] == "https://mybinder.org"
    assert launch["colab_url"] == "https://colab.research.google.com"
    assert launch["notebook_interface"] == "jupyterlab"


def test_binder_environment_is_cpu_only_and_installs_the_package():
    lines = [line.split("#")[0].strip() for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    torch = [line for line in lines if re.match(r"torch\b", line)]
    assert torch and all(line.endswith("+cpu") for line in torch), torch
    assert "-e ." in lines or "." in lines, "binder/requirements.txt must install bagdrop from the repository"
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    # every package the notebooks import at the top is there (myst_nb for glue)
    names = {re.split(r"[=<>\[ ]", line)[0].lower() for line in lines if not line.startswith("-")}
    assert {"numpy", "matplotlib", "pandas", "myst-nb", "ipywidgets", "mnist1d"} <= names


def test_colab_cell_installs_this_repository_at_main():
    for nb in sorted((ROOT / "chapters").glob("*.ipynb")):
        cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        first = "".join(cells[0]["source"]) if cells else ""
        assert f"git+https://github.com/{REPO}@{BRANCH}" in first, \
            f"{nb.name}: the Colab cell must install bagdrop from {REPO}@{BRANCH}"


# ------------------------------------------------------------------ built pages
@pytest.fixture(scope="module")
def built():
    if os.environ.get("BAGDROP_RENDERED_TEST") != "1":
        pytest.skip("needs the built book: runs in `make test-rendered`")
    assert (HTML / "index.html").is_file(), f"no book at {HTML}: run `make build` first"
    return HTML


def test_every_notebook_page_has_binder_and_colab_links(built):
    pages = notebook_pages()
    if "BAGDROP_HTML" in os.environ:  # a throwaway book may hold only some notebooks
        pages = [(page, nb) for page, nb in pages if page.is_file()]
    missing = [nb for page, nb in pages if not page.is_file()]
    assert pages and not missing, f"notebooks without a page in {built}: {missing}"
    for page, notebook in pages:
        links = launch_links(page)
        assert len(links["binder"]) == 1 and len(links["colab"]) == 1, f"{notebook}: {links}"

        binder = urlsplit(links["binder"][0])
        assert binder.path == f"/v2/gh/{REPO}/{BRANCH}", links["binder"][0]
        urlpath = parse_qs(binder.query)["urlpath"][0]
        assert urlpath.startswith("lab/tree/"), f"Binder must open JupyterLab: {urlpath}"
        assert urlpath.removeprefix("lab/tree/") == notebook
        assert tracked(urlpath.removeprefix("lab/tree/")), f"Binder opens a file git does not track: {urlpath}"

        colab = urlsplit(links["colab"][0])
        prefix = f"/github/{REPO}/blob/{BRANCH}/"
        assert colab.path.startswith(prefix), links["colab"][0]
        assert colab.path.removeprefix(prefix) == notebook
        assert tracked(notebook), f"Colab opens a file git does not track: {notebook}"


def test_markdown_pages_have_no_launch_links(built):
    """Launch buttons are for notebooks: intro.md has nothing to run."""
    links = launch_links(built / "intro.html")
    assert links == {"binder": [], "colab": []}, links
