"""Backends: kind, an existing cluster, or the simulated model, behind one small interface."""
