"""Sphinx configuration: the markdown guides (MyST) and the API reference from the numpydoc
docstrings. Built by ``make docs`` with warnings as errors."""

project = "arma-nets"
author = "the arma-nets developers"
copyright = "2026, " + author

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 4
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # the numpydoc Parameters sections say it with shapes
html_theme = "alabaster"
html_title = "arma-nets"
