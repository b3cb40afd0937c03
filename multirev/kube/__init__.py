"""Kubernetes vocabulary shared by every backend: kinds, selectors, object helpers."""
