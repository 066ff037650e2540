"""Renderers of stored results: terminal tables now; Markdown and HTML arrive with `compare`."""
