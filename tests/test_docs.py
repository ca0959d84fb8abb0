"""The documentation builds with warnings as errors, and its tutorial (docs/tutorial.md, a MyST-NB
notebook) runs on the example pair while it builds."""

import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="sphinx is not installed: pip install -e \".[docs]\" builds the docs")
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
                             str(DOCS), str(tmp_path / "html")],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"sphinx failed:\n{result.stdout[-5000:]}\n{result.stderr[-10000:]}"
    assert (tmp_path / "html" / "tutorial.html").is_file()
