"""Versions, the capability table, profiles and Kubernetes compatibility."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from multirev.compat import choose_node_image, common_kubernetes
from multirev.errors import UsageError
from multirev.istio.capabilities import CAPABILITIES, check_known, supports
from multirev.istio.versions import IstioVersion, KubeVersion
from multirev.plan import MeshPlan
from multirev.profile import load_profile

V = IstioVersion.parse


def test_version_parsing_and_revision_names() -> None:
    assert V("1.30.3").revision == "1-30-3"
    assert str(V("v1.31.0-rc.0")) == "1.31.0-rc.0"
    assert V("1.18.5") < V("1.19.3")
    with pytest.raises(UsageError, match="not an Istio version"):
        V("1.30")


def test_capability_rows_are_cited_and_version_aware() -> None:
    assert all(row.source and row.meaning for row in CAPABILITIES)
    assert supports(V("1.20.0"), "installed-state-iop") and not supports(V("1.21.0"), "installed-state-iop")
    assert not supports(V("1.27.0"), "tag-service") and supports(V("1.28.0"), "tag-service")
    assert supports(V("1.27.0"), "native-sidecars-auto") and not supports(V("1.26.3"), "native-sidecars-auto")
    assert supports(V("1.24.0"), "enhanced-scoping-env") and not supports(V("1.25.0"), "enhanced-scoping-env")
    # backports: 1.19.5 and 1.20.1 strip operator labels from `tag set` objects, 1.19.4 and 1.20.0 do not
    strips = [v for v in ("1.19.4", "1.19.5", "1.20.0", "1.20.1", "1.21.0", "1.30.3")
              if supports(V(v), "tag-strips-operator-labels")]
    assert strips == ["1.19.5", "1.20.1", "1.21.0", "1.30.3"]


def test_unknown_minor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # An --assume-facts-of earlier in this process sets the assumption; start from none.
    from multirev.istio import capabilities

    monkeypatch.setattr(capabilities, "_ASSUMED_LIKE", [])
    with pytest.raises(UsageError, match="unknown Istio version 1.99.0"):
        check_known(V("1.99.0"))


def test_the_local_dev_pair_is_two_minors_with_their_own_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    from multirev.istio import capabilities

    monkeypatch.setattr(capabilities, "_ASSUMED_LIKE", [])
    profile = load_profile("local-dev")
    assert (str(profile.stable.version), str(profile.canary.version)) == ("1.30-dev", "1.31-dev")
    assert (profile.stable.revision, profile.canary.revision) == ("1-30-dev", "1-31-dev")
    assert profile.assumed_facts_of is None and capabilities._ASSUMED_LIKE == []
    # The local backend's Kubernetes (v1.35.4) lies inside both minors' ranges.
    assert str(common_kubernetes(profile.stable.version, profile.canary.version)) == "1.32-1.36"


def test_common_kubernetes_ranges() -> None:
    assert str(common_kubernetes(V("1.18.5"), V("1.19.3"))) == "1.25-1.27"
    assert str(common_kubernetes(V("1.29.6"), V("1.30.3"))) == "1.32-1.35"
    assert str(common_kubernetes(V("1.23.6"), V("1.24.6"))) == "1.28-1.30"
    assert str(common_kubernetes(V("1.24.6"), V("1.25.2"))) == "1.29-1.31"
    with pytest.raises(UsageError, match="no Kubernetes version runs both"):
        common_kubernetes(V("1.18.5"), V("1.30.3"))


def test_node_image_is_newest_pinned_inside_the_range() -> None:
    reference = choose_node_image(V("1.18.5"), V("1.19.3"), None)
    assert reference.kubernetes == KubeVersion(1, 27) and "@sha256:" in reference.image
    current = choose_node_image(V("1.29.6"), V("1.30.3"), None)
    assert current.kubernetes == KubeVersion(1, 35) and current.kind_version == "v0.33.0"
    digest = "@sha256:" + "ab" * 32
    override = choose_node_image(V("1.29.6"), V("1.30.3"), f"kindest/node:v1.33.12{digest}")
    assert override.image.endswith(digest) and override.kind_version == "v0.32.0"  # built 1.33 images


@pytest.mark.parametrize(("image", "expected"), [
    ("not an image", "--kind-image 'not an image' is not a kind node image: expected <name>:v<Kubernetes release>"),
    ("kindest/node:latest", "is not a kind node image"),
    ("kindest/node:v1.20.2", "--kind-image kindest/node:v1.20.2 runs Kubernetes 1.20, which Istio 1.29.6 and 1.30.3 "
                             "do not both support (they share 1."),
])
def test_a_kind_image_that_cannot_run_the_pair_is_refused_in_one_line(image: str, expected: str) -> None:
    """Issue 27: an image with no Kubernetes release in its tag crashed (IndexError); one outside what both Istio
    versions support ran anyway."""
    with pytest.raises(UsageError) as refused:
        choose_node_image(V("1.29.6"), V("1.30.3"), image)
    assert expected in str(refused.value) and "\n" not in str(refused.value)


def test_reference_profile_is_the_classic_setup() -> None:
    profile = load_profile("reference")
    assert (profile.stable.namespace, profile.stable.revision, profile.stable.tag) == ("istio-prod", "1-18-5",
                                                                                      "prod-stable")
    assert (profile.canary.namespace, profile.canary.revision, profile.canary.tag) == ("istio-canary", "1-19-3",
                                                                                      "prod-canary")
    assert profile.stable.app_namespaces == ("l7-traffic-beta",)
    assert profile.canary.app_namespaces == ("l7-traffic-alpha",)


def test_current_profile_and_overrides() -> None:
    profile = load_profile("current")
    assert (str(profile.stable.version), str(profile.canary.version)) == ("1.29.6", "1.30.3")
    overridden = load_profile("reference", stable_version="1.19.3", canary_version="1.20.0")
    assert overridden.stable.revision == "1-19-3" and overridden.canary.revision == "1-20-0"
    shared = load_profile("reference", layout="shared")
    assert shared.stable.namespace == shared.canary.namespace == "istio-system"


def test_profile_file_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text("name: mine\nstable: {version: 1.29.6, namespace: a, tag: s, app_namespaces: [x]}\n"
                    "canary: {version: 1.30.3, namespace: b, tag: c, app_namespaces: [y]}\n")
    assert load_profile(path=good).canary.revision == "1-30-3"
    bad = tmp_path / "bad.yaml"
    bad.write_text("stable: {version: 1.29.6, namespace: a, tag: s, app_namespaces: [x]}\n"
                   "canary: {version: 1.30.3, namespace: b, tag: s, app_namespaces: [y]}\n")
    with pytest.raises(UsageError, match="both use tag 's'"):
        load_profile(path=bad)
    overlapping = tmp_path / "overlap.yaml"
    overlapping.write_text("stable: {version: 1.29.6, namespace: a, tag: s, app_namespaces: [x, shop]}\n"
                           "canary: {version: 1.30.3, namespace: b, tag: c, app_namespaces: [shop, y]}\n")
    with pytest.raises(UsageError, match=r"overlap.yaml: app namespace 'shop' is in both stable and canary"):
        load_profile(path=overlapping)
    in_control_plane = tmp_path / "cp.yaml"
    in_control_plane.write_text("stable: {version: 1.29.6, namespace: a, tag: s, app_namespaces: [x]}\n"
                                "canary: {version: 1.30.3, namespace: b, tag: c, app_namespaces: [a]}\n")
    with pytest.raises(UsageError, match=r"canary app namespace 'a' is also a control plane's namespace"):
        load_profile(path=in_control_plane)
    with pytest.raises(UsageError, match="unknown --profile"):
        load_profile("nope")
    with pytest.raises(UsageError, match="--layout must be one of"):
        load_profile("current", layout="sideways")
    with pytest.raises(UsageError, match="cannot read --profile-file"):
        load_profile(path=tmp_path / "missing.yaml")


def _profile_with(tmp_path, **changes) -> Path:
    mine = tmp_path / "mine.yaml"
    data = yaml.safe_load((Path(__file__).parents[2] / "multirev" / "profiles" / "current.yaml").read_text())
    for dotted, value in changes.items():
        role, key = dotted.split("__")
        data[role][key] = value
    mine.write_text(yaml.safe_dump(data))
    return mine


def test_a_default_revision_profile_is_one_the_suite_installs() -> None:
    """`revision: default` on stable: installed without a revision, its tag `default`, its app namespaces labelled
    istio-injection=enabled; the canary keeps istio.io/rev=<tag>."""
    profile = load_profile("local-dev-default")
    plan = MeshPlan(profile, "r1")
    stable, canary = plan.plane("stable"), plan.plane("canary")
    assert stable.is_default_revision and not canary.is_default_revision
    assert stable.injection_labels == {"istio-injection": "enabled"}
    assert canary.injection_labels == {"istio.io/rev": "canary"}
    assert (stable.plane.tag, stable.plane.namespace) == ("default", "istio-system")
    assert load_profile("local-dev-default", layout="shared").canary.namespace == "istio-system"


@pytest.mark.parametrize(("changes", "refusal"), [
    ({"stable__revision": "default"}, r"stable revision 'default' is installed without a revision, and istioctl "
                                      r"install makes tag 'default' for it; set its tag to 'default', not 'stable'$"),
    ({"canary__revision": "default", "canary__tag": "default"},
     r"canary revision 'default' means a canary installed without a revision, which would take the default tag "
     r"over from stable; give the canary a revision"),
    ({"stable__tag": "default"}, r"tag 'default' is reserved by istioctl install \(it names the first revision "
                                 r"installed\); only a plane with revision 'default' uses it$"),
])
def test_default_revision_mistakes_are_one_line(tmp_path, changes: dict, refusal: str) -> None:
    with pytest.raises(UsageError, match=refusal) as refused:
        load_profile(path=_profile_with(tmp_path, **changes))
    assert "\n" not in str(refused.value)


def test_a_default_revision_installed_by_helm_is_refused_in_one_line() -> None:
    """Helm makes no `default` tag for a control plane installed without a revision; the upgrade moves that tag."""
    with pytest.raises(UsageError, match=r"a stable plane installed without a revision is certified with istioctl "
                                         r"only \(Helm makes no default tag for it\); drop --installer helm$"):
        load_profile("local-dev-default", installer="helm")


def test_an_unknown_variant_is_one_line(tmp_path) -> None:
    """`variant:` in a profile, or --variant, names one of the injector's known image types, or nothing."""
    mine = tmp_path / "mine.yaml"
    data = yaml.safe_load((Path(__file__).parents[2] / "multirev" / "profiles" / "current.yaml").read_text())
    data["variant"] = "shiny"
    mine.write_text(yaml.safe_dump(data))
    with pytest.raises(UsageError, match=r": variant must be one of distroless, debug \(or empty for the default "
                                         r"images\), not 'shiny'$") as refused:
        load_profile(path=mine)
    assert "\n" not in str(refused.value)
    with pytest.raises(UsageError, match=r"^--variant must be one of distroless, debug"):
        load_profile("current", variant="shiny")


@pytest.mark.parametrize(("text", "expected"), [
    ("stable: {version: 1.29.6, revison: a, namespace: s, tag: t, app_namespaces: [x]}\ncanary: {}\n",
     ": stable: unknown key 'revison'; did you mean 'revision'? known: version, revision, namespace, tag, "
     "app_namespaces"),
    ("layout: shared\nstable: {}\ncanary: {}\n", ": 'layout' is not a profile key; choose it with --layout"),
    ("stable:\n  version: 1.29.6\n   tag: x\n", " is not valid YAML at line 3, column 7: "),
])
def test_a_profile_with_a_typo_is_refused_in_one_line_naming_it(tmp_path, text: str, expected: str) -> None:
    """Issue 27: unknown keys were silently ignored, and a YAML error lost the line and column PyYAML gave."""
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as refused:
        load_profile("current", path=path)
    assert expected in str(refused.value) and "\n" not in str(refused.value), str(refused.value)
