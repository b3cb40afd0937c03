"""The local backend's build recipes: wrapper modules, version ldflags, pins and checksum policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from multirev.backends.local import build
from multirev.backends.local.backend import LocalBackend, LocalOptions
from multirev.backends.local.pins import ISTIO, KUBERNETES
from multirev.clock import WallClock
from multirev.commands import SubprocessRunner
from multirev.errors import EnvironmentProblem, UsageError
from multirev.istio.versions import IstioVersion

KUBERNETES_GO_MOD = """module k8s.io/kubernetes

go 1.25.0

require (
\tgithub.com/blang/semver/v4 v4.0.0
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)
"""

ETCD_GO_MOD = """module go.etcd.io/etcd/server/v3

go 1.24

require (
\tgo.etcd.io/etcd/api/v3 v3.6.5
\tgo.etcd.io/etcd/client/v3 v3.6.5 // indirect
)

replace (
\tgo.etcd.io/etcd/api/v3 => ../api
\tgo.etcd.io/etcd/client/v3 => ../client/v3
)

replace go.etcd.io/etcd => ./FORBIDDEN_DEPENDENCY
"""


def test_kubernetes_wrapper_pins_staging_modules_to_the_release() -> None:
    text = build.wrapper_go_mod(build.kubernetes_recipe(), KUBERNETES_GO_MOD)
    assert f"require k8s.io/kubernetes {KUBERNETES.version}" in text
    minor_patch = KUBERNETES.version.lstrip("v").split(".", 1)[1]
    assert f"\tk8s.io/api => k8s.io/api v0.{minor_patch}" in text
    assert f"\tk8s.io/client-go => k8s.io/client-go v0.{minor_patch}" in text
    assert "go 1.25.0" in text
    assert "./staging" not in text


def test_etcd_wrapper_uses_the_required_sibling_versions_and_drops_the_forbidden_guard() -> None:
    text = build.wrapper_go_mod(build.etcd_recipe(), ETCD_GO_MOD)
    assert "\tgo.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v3.6.5" in text
    assert "\tgo.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 v3.6.5" in text
    assert "FORBIDDEN" not in text and "../" not in text


def test_a_relative_replace_without_a_version_is_refused() -> None:
    recipe = build.kwok_recipe()
    with pytest.raises(EnvironmentProblem, match="no version is known"):
        build.wrapper_go_mod(recipe, "module x\n\nrequire example.com/y v0.0.0\n\nreplace example.com/y => ../y\n")


def test_kubernetes_ldflags_make_version_report_the_release() -> None:
    flags = " ".join(build.kubernetes_recipe().ldflags)
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion={KUBERNETES.version}" in flags
        assert f"-X {package}.gitMinor={KUBERNETES.version.split('.')[1]}" in flags


@pytest.mark.parametrize("version", sorted(ISTIO))
def test_istio_recipes_set_the_version_upstream_sets(version: str) -> None:
    pin = ISTIO[version]
    recipe = build.istio_recipe(pin)
    flags = " ".join(recipe.ldflags)
    assert f"-X {pin.version_package}.buildVersion={version}" in flags
    assert f"-X {pin.version_package}.buildHub={pin.hub}" in flags
    assert set(recipe.packages) == {"istioctl", "pilot-discovery", "pilot-agent"}
    assert str(IstioVersion.parse(version)) == version  # the suite reads back what the build bakes in


def test_every_pin_served_here_is_checksum_pinned() -> None:
    for version, pin in ISTIO.items():
        if pin.served_here:
            assert pin.pin.zip_sum.startswith("h1:"), version
        else:
            assert pin.notes, f"{version}: say why it cannot be built here"


def test_a_pin_carries_its_replacements_into_the_wrapper_and_a_changed_one_rebuilds(tmp_path: Path) -> None:
    import json

    recipe = build.istio_recipe(ISTIO["1.30-dev"])
    text = build.wrapper_go_mod(recipe, "module istio.io/istio\n\ngo 1.25.9\n\nrequire istio.io/api v1.30.4\n")
    for replacement in ISTIO["1.30-dev"].replaces:
        assert f"\t{replacement.module} => {replacement.module} {replacement.version}" in text
        assert replacement.reason  # each says what it changes
    folder = recipe.folder(tmp_path)
    folder.mkdir(parents=True)
    for name in recipe.packages:
        (folder / name).write_text("")
    info = {"module_version": recipe.pin.version, "tags": list(recipe.tags), "ldflags": list(recipe.ldflags),
            "replaces": build.replace_record(recipe)}
    (folder / build.BUILD_INFO).write_text(json.dumps(info))
    assert build.is_built(recipe, tmp_path)
    info["replaces"] = [*info["replaces"][:-1], "github.com/agentgateway/agentgateway/api => v0.0.0-older"]
    (folder / build.BUILD_INFO).write_text(json.dumps(info))
    assert not build.is_built(recipe, tmp_path)


def test_every_pin_agrees_with_what_the_module_proxy_answered() -> None:
    """Network-free: served-answers.json is what `./run probe-modules` recorded (the day is in it)."""
    from multirev.backends.local import served

    answers = served.load()
    assert {pin.pin.version for pin in ISTIO.values()} <= set(answers["answers"])
    assert [problem for pin in ISTIO.values() for problem in served.problems(pin, answers)] == []
    # What the record documents: the pins of the local-dev pair build, 1.30-dev only with its five replacements.
    assert answers["answers"][ISTIO["1.31-dev"].pin.version]["refused_dependencies"] == {}
    assert len(answers["answers"][ISTIO["1.30-dev"].pin.version]["refused_dependencies"]) == 5
    assert not answers["answers"][ISTIO["1.30.3"].pin.version]["served"]


def test_a_pin_that_disagrees_with_the_record_is_named() -> None:
    import dataclasses

    from multirev.backends.local import served

    answers = served.load()
    pin = ISTIO["1.30-dev"]
    bare = dataclasses.replace(pin, replaces=pin.replaces[1:])
    assert served.problems(bare, answers) == [
        "1.30-dev: istio.io/api@v1.30.4-0.20260824163423-69099aec2678 is refused (403 Forbidden: This module "
        "version is not available.) and the pin does not replace it"]
    extra = dataclasses.replace(ISTIO["1.31-dev"], replaces=pin.replaces[:1])
    assert served.problems(extra, answers)[0] == ("1.31-dev: replaces istio.io/api, which the proxy serves as "
                                                  "required")
    refused = dataclasses.replace(ISTIO["1.30.3"], served_here=True)
    assert served.problems(refused, answers) == ["1.30.3: marked served, but the proxy answered 403 Forbidden: "
                                                 "This module version is not available."]


def test_unknown_istio_version_is_one_clear_line() -> None:
    with pytest.raises(UsageError, match="no build pin for Istio 1.27.0"):
        build.recipes_for(["1.27.0"])


def test_checksum_verification_cannot_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOSUMDB", "off")
    with pytest.raises(EnvironmentProblem, match="GOSUMDB=off"):
        build.GoTool.find()


def test_no_sum_database_exemptions_reach_the_go_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GONOSUMDB", "*")
    monkeypatch.setenv("GOFLAGS", "-mod=vendor -buildvcs=false")
    tool = build.GoTool.find()
    assert "GONOSUMDB" not in tool.env
    assert "-mod=vendor" not in tool.env["GOFLAGS"] and "-mod=mod" in tool.env["GOFLAGS"]


def test_binary_names_follow_the_go_command() -> None:
    assert build.go_binary_name("go.etcd.io/etcd/server/v3") == "server"
    assert build.go_binary_name("k8s.io/kubernetes/cmd/kube-apiserver") == "kube-apiserver"
    assert build.go_binary_name("example.com/v2tool") == "v2tool"


def _module(tmp_path: Path) -> Path:
    module = tmp_path / "module"
    (module / "samples/bookinfo/platform/kube").mkdir(parents=True)
    (module / "samples/bookinfo/platform/kube/bookinfo.yaml").write_text("kind: Service\n")
    (module / "tools/packaging/common").mkdir(parents=True)
    (module / build.ISTIO_BOOTSTRAP).write_text("{}\n")
    (module / build.ISTIO_CHARTS / "base").mkdir(parents=True)
    (module / build.ISTIO_CHARTS / "base/Chart.yaml").write_text("name: base\n")
    for path in (module / "samples/bookinfo/platform/kube/bookinfo.yaml", module / build.ISTIO_BOOTSTRAP,
                 module / build.ISTIO_CHARTS / "base/Chart.yaml"):
        path.chmod(0o444)  # as the module cache keeps them
    return module


def test_what_a_run_reads_is_copied_out_of_the_module(tmp_path: Path) -> None:
    """Samples and the bootstrap template sit next to the binaries (issue 16, "Also"): a machine whose module
    cache was emptied still runs."""
    recipe = build.istio_recipe(ISTIO["1.31-dev"])
    build.copy_data(recipe, _module(tmp_path), recipe.source(tmp_path / "cache"))
    assert build.has_data(recipe, tmp_path / "cache")
    assert (recipe.source(tmp_path / "cache") / "samples/bookinfo/platform/kube/bookinfo.yaml").read_text()
    assert (recipe.source(tmp_path / "cache") / build.ISTIO_CHARTS / "base/Chart.yaml").read_text()  # --installer helm


def test_a_folder_built_before_the_copy_gets_it_without_a_rebuild(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = build.istio_recipe(ISTIO["1.31-dev"])
    cache = tmp_path / "cache"
    recipe.folder(cache).mkdir(parents=True)
    module = _module(tmp_path)
    monkeypatch.setattr(build, "module_source", lambda pin: module)
    build.ensure_data(recipe, cache)
    assert build.has_data(recipe, cache)
    monkeypatch.setattr(build, "module_source", lambda pin: pytest.fail("copied twice"))
    build.ensure_data(recipe, cache)


def test_a_run_reads_samples_and_stages_from_the_binary_cache_not_the_module_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "module_source", lambda pin: pytest.fail("a run must not need the module cache"))
    options = LocalOptions(run_id="r", worker="main", istio_versions=["1.31-dev"], bin_cache=tmp_path,
                           work_dir=tmp_path / "work")
    backend = LocalBackend(SubprocessRunner(), WallClock(), options)
    samples = backend.samples_dir(IstioVersion.parse("1.31-dev"))
    assert samples == build.istio_recipe(ISTIO["1.31-dev"]).source(tmp_path) / "samples"
    assert build.kwok_recipe().data == build.KWOK_STAGES
