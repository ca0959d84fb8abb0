"""The codebase's own rules, checked: short modules and functions, no private imports across
modules, and a product that speaks only of itself."""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "gwalign"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
# Product text: what users and contributors read.
PRODUCT = ["gwalign", "tests", "benchmarks", "docs", "configs", "example_data", "README.md", "CHANGELOG.md"]
PRODUCT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".rst"}
# Words of a development diary, and paths outside the repository (spelt in pieces, so that this file
# does not match its own check or a plain search for the words).
_DIARY = ["sess" + r"ions?\s+\d+", "iss" + r"ues?\s+\d+", "throw" + "away"]
_OUTSIDE = [r"\.\./" + "shared", "shared" + r"/data\b", "shared" + r"/tools\b", "DES" + r"IGN\.md\b"]
FORBIDDEN = re.compile("|".join([rf"\b{word}\b" for word in _DIARY] + _OUTSIDE), re.IGNORECASE)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _product_files() -> list[Path]:
    files = []
    for name in PRODUCT:
        path = REPO / name
        candidates = [path] if path.is_file() else path.rglob("*")
        files += [p for p in candidates if p.is_file() and p.suffix in PRODUCT_SUFFIXES
                  and "_build" not in p.parts and p.name != "test_layout.py"]
    return sorted(files)


@pytest.mark.parametrize("module", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_are_short(module):
    assert len(module.read_text().splitlines()) <= MAX_MODULE_LINES


@pytest.mark.parametrize("module", [m for m in _modules() if "kernels" not in m.parts],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_functions_are_short(module):
    """Triton kernels are exempt: a kernel reads best as one body."""
    tree = ast.parse(module.read_text())
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, long


@pytest.mark.parametrize("module", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_imports_another_modules_private_names(module):
    tree = ast.parse(module.read_text())
    private = [f"{node.module}.{alias.name}" for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gwalign")
               for alias in node.names if alias.name.startswith("_") and alias.name != "__version__"]
    assert not private, private


def test_the_product_speaks_only_of_itself():
    """No diary words (:data:`FORBIDDEN` lists them) and no paths outside the repository."""
    hits = []
    for path in _product_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)


def test_the_checks_catch_what_they_look_for():
    """The patterns above must match what they are meant to refuse."""
    for text in ("sess" + "ion 17", "Iss" + "ue 5", "a throw" + "away script", "../sha" + "red/data", "see DES" + "IGN.md"):
        assert FORBIDDEN.search(text), text
    for text in ("shared cell types", "scope='sess" + "ion'", "an iss" + "ue with the file"):
        assert not FORBIDDEN.search(text), text
