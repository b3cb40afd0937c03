"""Which istiod owns a Gateway (multirev/istio/gateway_api.py), per minor, on the setups the profiles make."""

from __future__ import annotations

import pytest

from multirev.istio.gateway_api import MODULES, IstiodView, claims, deployment_name, module_for
from multirev.istio.versions import IstioVersion

V130, V131, V119 = IstioVersion.parse("1.30.3"), IstioVersion.parse("1.31.0"), IstioVersion.parse("1.19.3")


def _views(stable_tags: set[str], canary_tags: set[str], *, default_revision: str | None = None,
           stable_revision: str = "1-30-3") -> dict[str, IstiodView]:
    return {"stable": IstiodView(stable_revision, frozenset(stable_tags), default_revision == "stable"),
            "canary": IstiodView("1-31-0", frozenset(canary_tags), default_revision == "canary")}


def _owners(views: dict[str, IstiodView], gateway_rev: str | None, namespace_rev: str | None = None, *,
            default_tag_exists: bool = False, version: IstioVersion = V131) -> list[str]:
    return [role for role, view in views.items()
            if claims(version, view, gateway_rev, namespace_rev, default_tag_exists=default_tag_exists)]


def test_a_gateway_labelled_with_a_tag_is_owned_by_the_revision_holding_it_and_follows_a_tag_move() -> None:
    assert _owners(_views({"prod-stable", "default"}, {"prod-canary"}), "prod-stable", default_tag_exists=True) \
        == ["stable"]
    moved = _views({"default"}, {"prod-stable", "prod-canary"})
    assert _owners(moved, "prod-stable", default_tag_exists=True) == ["canary"]


def test_the_namespace_label_decides_when_the_gateway_has_none() -> None:
    views = _views({"prod-stable"}, {"prod-canary"})
    assert _owners(views, None, "prod-canary") == ["canary"]
    assert _owners(views, "prod-stable", "prod-canary") == ["stable"]  # its own label first


def test_an_unlabelled_gateway_goes_to_the_default_tag_then_to_the_default_revision() -> None:
    assert _owners(_views({"prod-stable", "default"}, {"prod-canary"}, default_revision="stable"), None,
                   default_tag_exists=True) == ["stable"]
    # No default tag: the revision the default validator names.
    assert _owners(_views({"prod-stable"}, {"prod-canary"}, default_revision="canary"), None) == ["canary"]
    # A default tag elsewhere wins over the default revision.
    assert _owners(_views({"prod-stable"}, {"prod-canary", "default"}, default_revision="stable"), None,
                   default_tag_exists=True) == ["canary"]


def test_an_istiod_without_a_revision_keeps_claiming_unlabelled_gateways_after_the_default_tag_moves() -> None:
    """Its REVISION is `default`, so `default` stays among its tags (tag_watcher.go@1.29.6 GetMyTags): once the tag
    is moved to the canary, both claim an unlabelled Gateway. A check certifying the upgrade must see this."""
    views = _views(set(), {"prod-canary", "default"}, stable_revision="default")
    assert _owners(views, None, default_tag_exists=True) == ["stable", "canary"]


def test_before_1_28_nobody_owns_an_unlabelled_gateway_without_a_default_tag_or_revision() -> None:
    views = _views({"prod-stable"}, {"prod-canary"}, default_revision="stable")
    assert _owners(views, None, version=V119) == []
    assert _owners(views, "prod-canary", version=V119) == ["canary"]


def test_an_unmodelled_minor_is_refused() -> None:
    with pytest.raises(ValueError, match="1.24.0 is not modelled"):
        claims(IstioVersion.parse("1.24.0"), IstiodView("r", frozenset()), None, None)


def test_the_crds_come_from_the_newer_module_of_the_run() -> None:
    assert module_for([IstioVersion.parse("1.29.6"), V130]) == MODULES[(1, 30)]
    assert module_for([V119, IstioVersion.parse("1.18.5")]) == MODULES[(1, 19)]
    assert module_for([IstioVersion.parse("1.24.0"), V130]) is None
    assert deployment_name("bookinfo-gateway") == "bookinfo-gateway-istio"


def test_the_release_manifest_is_kept_only_when_its_sha256_is_the_pinned_one(tmp_path, monkeypatch) -> None:
    import hashlib

    from multirev.errors import EnvironmentProblem, UsageError
    from multirev.istio import gateway_api

    mirror = tmp_path / "mirror"
    (mirror / "v9.9.9").mkdir(parents=True)
    (mirror / "v9.9.9" / "standard-install.yaml").write_text("kind: CustomResourceDefinition\n")
    monkeypatch.setitem(gateway_api.RELEASE_SHA256, "v9.9.9", "0" * 64)
    with pytest.raises(EnvironmentProblem, match="sha256 mismatch"):
        gateway_api.ensure_release_manifest("v9.9.9", cache=tmp_path / "cache", mirror=str(mirror))
    assert not (tmp_path / "cache/gateway-api/v9.9.9/standard-install.yaml").exists()
    digest = hashlib.sha256(b"kind: CustomResourceDefinition\n").hexdigest()
    monkeypatch.setitem(gateway_api.RELEASE_SHA256, "v9.9.9", digest)
    kept = gateway_api.ensure_release_manifest("v9.9.9", cache=tmp_path / "cache", mirror=str(mirror))
    assert kept.read_text() == "kind: CustomResourceDefinition\n"
    with pytest.raises(UsageError, match="no sha256 is pinned for the Gateway API v0.1.0"):
        gateway_api.ensure_release_manifest("v0.1.0", cache=tmp_path / "cache", mirror=str(mirror))


def test_the_manifest_built_from_a_module_is_verified_against_the_pin(tmp_path) -> None:
    from multirev.istio.gateway_api import install_manifest, verified_manifest

    module = tmp_path / "gateway-api"
    (module / "hack/boilerplate").mkdir(parents=True)
    (module / "hack/boilerplate/boilerplate.sh.txt").write_text("# Copyright\n")
    (module / "config/crd/standard").mkdir(parents=True)
    for name in ("gateway.networking.k8s.io_httproutes.yaml", "gateway.networking.k8s.io_gateways.yaml"):
        (module / "config/crd/standard" / name).write_text(f"name: {name}\n")
    text = install_manifest(module)
    assert text.startswith("# Copyright\n#\n# Gateway API Standard channel install\n#\n---\n#\n"
                           "# config/crd/standard/gateway.networking.k8s.io_gateways.yaml\n#\n")
    with pytest.raises(ValueError, match="standard-install.yaml has sha256 .* expected 751002b3"):
        verified_manifest(text, "v1.5.1")
