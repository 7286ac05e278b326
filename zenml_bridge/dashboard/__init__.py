"""``zenml-bridge dashboard``: a local, read-only web view of runs, steps and artifacts.

Imported only by its CLI command (it needs Jinja2, the ``dashboard`` extra); ``import
zenml_bridge`` never loads it. See docs/dashboard.md.
"""
