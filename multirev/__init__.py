"""Conformance suite for two Istio control-plane revisions running side by side."""

__version__ = "0.1.0"
