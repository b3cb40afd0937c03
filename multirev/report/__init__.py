"""Turning test outcomes into the per-feature conformance report (JSON and Markdown)."""
