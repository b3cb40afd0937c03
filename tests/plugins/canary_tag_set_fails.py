"""A pytest plugin for child runs: set-up fails half-way, after both installs and the stable tag, as when the
connection to the API server drops during `istioctl tag set` of the canary's tag."""

from __future__ import annotations

from multirev.istio.istioctl import Istioctl

_tag_set = Istioctl.tag_set
FAILING_TAG = "canary"


def _dies_for_the_canary_tag(self: Istioctl, tag: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
    if tag == FAILING_TAG:
        raise ConnectionResetError(f"connection reset during `istioctl tag set {tag}`")
    return _tag_set(self, tag, *args, **kwargs)


Istioctl.tag_set = _dies_for_the_canary_tag  # type: ignore[method-assign]
