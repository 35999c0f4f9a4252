"""Checks of the book itself: table of contents, stripped notebooks, setup cells, config."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))
            for part in entry.get("chapters", []):
                walk([part])

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return files


def resolve(entry: str) -> Path | None:
    for suffix in ("", ".md", ".ipynb"):
        path = ROOT / f"{entry}{suffix}"
        if path.is_file():
            return path
    return None


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_there_are_chapters():
    assert NOTEBOOKS, "chapters/ holds no notebook"


def test_every_toc_entry_exists():
    missing = [e for e in toc_files() if resolve(e) is None]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_notebook_is_in_the_toc():
    listed = {resolve(e) for e in toc_files()}
    orphans = [p.name for p in NOTEBOOKS if p not in listed]
    assert not orphans, f"notebooks missing from _toc.yml: {orphans}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    cells = [c for c in load(path)["cells"] if c["cell_type"] == "code"]
    dirty = [i for i, c in enumerate(cells) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; run `make strip`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_colab_cell_then_setup(path):
    code = [c for c in load(path)["cells"] if c["cell_type"] == "code"]
    assert len(code) >= 2, f"{path.name} has fewer than two code cells"
    colab, setup = ("".join(c["source"]) for c in code[:2])
    assert "google.colab" in colab and "pip install" in colab, f"{path.name}: first cell must install on Colab only"
    assert "remove-cell" in code[0].get("metadata", {}).get("tags", []), f"{path.name}: Colab cell must be hidden"
    assert "import bagdrop as bd" in setup and re.search(r"device\s*=\s*bd\.setup\(seed=\d+", setup), \
        f"{path.name}: second code cell must run `import bagdrop as bd; device = bd.setup(seed=...)`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_the_book_kernel(path):
    assert load(path)["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_glued_names_are_defined(path):
    """Every {glue:...}`name` quoted in the prose is glued by a code cell of the same notebook."""
    cells = load(path)["cells"]
    prose = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    quoted = set(re.findall(r"\{glue(?::\w+)?\}`([\w.-]+?)(?::[^`]*)?`", prose))
    quoted |= set(re.findall(r"```\{glue(?::\w+)?\}\s+([\w.-]+)", prose))
    # glue("name", ...) or glue(f"name_{var}", ...): an f-string matches any word in its braces
    names = re.findall(r"glue\(\s*f?[\"']([\w.{}-]+)[\"']", code)
    patterns = [re.compile(re.sub(r"\\\{\w*\\\}", r"\\w+", re.escape(n)) + "$") for n in names]
    unglued = sorted(q for q in quoted if not any(p.match(q) for p in patterns))
    assert not unglued, f"{path.name}: quoted but never glued: {unglued}"


def test_config_fails_on_errors_and_cites_from_the_bib():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["raise_on_error"] is True
    assert config["execute"]["allow_errors"] is False
    assert config["only_build_toc_files"] is True
    assert config["repository"]["branch"] == "main"
    assert config["bibtex_bibfiles"] == ["references.bib"]


def test_every_reference_has_doi_arxiv_or_url():
    bib = (ROOT / "references.bib").read_text()
    entries = re.split(r"\n(?=@)", bib.strip())
    assert len(entries) >= 13
    bare = [e.split(",")[0] for e in entries if not re.search(r"\b(doi|eprint|url)\s*=", e)]
    assert not bare, f"references without DOI, arXiv id or URL: {bare}"


def test_every_cited_key_is_in_the_bib():
    bib = (ROOT / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    sources = [ROOT / "intro.md", *NOTEBOOKS]
    cited = set()
    for path in sources:
        text = path.read_text()
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            cited |= {k.strip() for k in group.split(",")}
    assert cited <= keys, f"cited but not in references.bib: {sorted(cited - keys)}"


def _distribution_names(requirements) -> set[str]:
    return {re.split(r"[\s\[<>=!~;@]", r.strip(), maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_colab_cell_installs_what_the_notebooks_import():
    """A reader on Colab gets bagdrop[notebooks]: its dependencies must cover every module a
    chapter imports (a notebook importing myst_nb without it fails there at the setup cell)."""
    import importlib.metadata
    import sys
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    provided = _distribution_names(project["dependencies"] + project["optional-dependencies"]["notebooks"])
    owners = importlib.metadata.packages_distributions()
    missing = {}
    for path in NOTEBOOKS:
        cells = load(path)["cells"]
        colab = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
        assert "bagdrop[notebooks] @ git+" in colab, f"{path.name}: the Colab cell must install bagdrop[notebooks]"
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        for module in re.findall(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", code, flags=re.M):
            if module in sys.stdlib_module_names or module == "bagdrop":
                continue
            dists = _distribution_names(owners.get(module, [module]))
            if not dists & provided:
                missing.setdefault(path.name, set()).add(module)
    assert not missing, f"imported by notebooks but not installed by bagdrop[notebooks]: {missing}"
