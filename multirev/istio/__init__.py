"""Istio knowledge: versions and their capabilities, names and labels, istioctl, releases."""
