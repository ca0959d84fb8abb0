"""Sphinx configuration of the gwalign documentation (Sphinx + MyST, built with -W)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "_ext"))      # cli_app: the Typer app as a click command (docs/cli.md)

import gwalign  # noqa: E402  (installed: pip install -e ".[docs]")

project = "gwalign"
author = "gwalign contributors"
copyright = "gwalign contributors, MIT licence"
version = release = gwalign.__version__

extensions = [
    "myst_nb",                 # MyST Markdown and executed MyST-NB notebooks (tutorial.md)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_click",
]

# The builds run offline (CI has no network), so no intersphinx.
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "_ext", "_static/*.py", "jupyter_execute"]
source_suffix = {".md": "myst-nb", ".rst": "restructuredtext"}

# MyST
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# MyST-NB: only the tutorial is a notebook (the other pages have no code cells), and it runs on
# every build.
nb_execution_mode = "force"
nb_execution_excludepatterns = ["index.md", "getting-started.md", "outputs.md", "cli.md", "api.md",
                                "performance.md", "accuracy.md", "changelog.md", "how-it-works/*"]
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# autodoc + napoleon (NumPy style docstrings)
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# Keep "--option" as typed in help texts (no en dashes); quotes and ellipses are still educated.
smartquotes_action = "qe"

# HTML
html_theme = "alabaster"
html_title = f"gwalign {release}"
html_static_path = ["_static"]
html_theme_options = {
    "description": "Gromov-Wasserstein alignment of single-cell data sets",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "240px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
