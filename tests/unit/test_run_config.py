"""Options become a RunConfig: per-worker names and ports, so xdist workers never share a cluster."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from fixtures.options import build_run_config

DEFAULTS = {"backend": "kind", "profile": "current", "profile_file": None, "istio_stable": None,
            "istio_canary": None, "assume_facts_of": None, "layout": "separate", "sim_fault": [],
            "sim_fault_plugin": [], "kubeconfig": None, "run_id": "r1", "reports_dir": None, "istio_cache": None,
            "kind_image": None, "istio_mirror": "https://example.invalid/istio", "cluster_name": "pytest-kind",
            "keep_cluster": False, "kind_bin": None, "context": None, "allow_destructive": False,
            "installer": None, "installed": None, "helm_mirror": "https://get.helm.sh", "helm_bin": None,
            "gateway_api_mirror": "https://github.com/kubernetes-sigs/gateway-api/releases/download",
            "gateway_host": None, "gateway_endpoint": [], "host_port_base": 18080, "sim_seed": 1, "bin_cache": None,
            "variant": None, "allow_purge": False}


def _config(tmp_path: Path, worker: str | None, **options: object) -> SimpleNamespace:
    values = {**DEFAULTS, **options}
    config = SimpleNamespace(getoption=values.__getitem__, rootpath=tmp_path)
    if worker:
        config.workerinput = {"workerid": worker, "multirev_run_id": "r1"}
    return config


@pytest.mark.parametrize(("chosen", "worker", "expected"), [
    ("pytest-kind", None, "multirev"), ("pytest-kind", "gw1", "multirev-gw1"),
    ("mine", None, "mine"), ("mine", "gw0", "mine-gw0"), ("mine", "gw1", "mine-gw1")])
def test_each_worker_gets_its_own_cluster_name(tmp_path: Path, chosen: str, worker: str | None,
                                               expected: str) -> None:
    cfg = build_run_config(_config(tmp_path, worker, cluster_name=chosen))  # type: ignore[arg-type]
    assert cfg.cluster_name == expected
    assert cfg.cluster_name_chosen == (chosen != "pytest-kind")
    assert cfg.host_port_base == 18080 + 10 * (int(worker.removeprefix("gw")) if worker else 0)


def test_run_ids_are_never_read_as_numbers(monkeypatch) -> None:
    """`4e178392` is a string to PyYAML but a float to the YAML 1.2 parser in istioctl and Helm, which then refuse the
    run-id label of the IstioOperator: such ids are drawn again."""
    import uuid

    from multirev import run

    drawn = iter(["4e178392" + "0" * 24, "12345678" + "0" * 24, "4e17839a" + "0" * 24])
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(next(drawn)))
    assert run.new_run_id() == "4e17839a"
