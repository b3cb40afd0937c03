"""Istioctl's argv, run for real through SubprocessRunner against a fake `istioctl` script that logs it."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from multirev.commands import RecordingRunner, SubprocessRunner, Transcript
from multirev.errors import UsageError
from multirev.istio.istioctl import Istioctl, KubeTarget, TagRow
from multirev.istio.versions import IstioVersion

KUBE = ["--kubeconfig", "/k/config", "--context", "ctx"]

# `istioctl tag list` as 1.21+ prints it: untagged revisions get a row with an empty TAG column.
TAG_TABLE = """\
TAG      REVISION NAMESPACES
default  1-29-6   app-a,app-b
canary   1-30-3   app-c
         1-30-3
"""


def make_fake(directory: Path, version_output: str) -> tuple[Path, Path]:
    """Write a bash `istioctl` that logs its argv as one JSON array per line; returns (script, log)."""
    log = directory / "istioctl-argv.log"
    script = directory / "istioctl"
    logger = "import json, sys; print(json.dumps(sys.argv[1:]))"
    script.write_text(f"""#!/usr/bin/env bash
{shlex.quote(sys.executable)} -c {shlex.quote(logger)} "$@" >> {shlex.quote(str(log))}
case "$1 $2" in
  "version --remote=false") printf '%s\\n' {shlex.quote(version_output)} ;;
  "tag list") printf '%s' {shlex.quote(TAG_TABLE)} ;;
  "install -f") echo "✔ Installation complete" ;;
esac
exit 0
""")
    script.chmod(0o755)
    return script, log


def logged(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def tool(tmp_path: Path, version: str = "1.30.3", version_output: str = "client version: 1.30.3"
         ) -> tuple[Istioctl, Path, str]:
    fake, log = make_fake(tmp_path, version_output)
    target = KubeTarget("/k/config", "ctx")
    return Istioctl(str(fake), IstioVersion.parse(version), SubprocessRunner(), target), log, str(fake)


def test_install_argv(tmp_path: Path) -> None:
    """install() runs `install -f <file> -y` followed by the kube target flags."""
    istioctl, log, fake = tool(tmp_path)
    result = istioctl.install(Path("/plans/stable.iop.yaml"))
    expected = ["install", "-f", "/plans/stable.iop.yaml", "-y", *KUBE]
    assert result.argv == [fake, *expected]
    assert result.returncode == 0 and "Installation complete" in result.stdout
    assert logged(log) == [expected]


@pytest.mark.parametrize(("overwrite", "tail"), [(False, []), (True, ["--overwrite"])])
def test_tag_set_argv(tmp_path: Path, overwrite: bool, tail: list[str]) -> None:
    """tag_set() always passes --revision, --istioNamespace and -y; --overwrite only when asked."""
    istioctl, log, _ = tool(tmp_path)
    istioctl.tag_set("prod-stable", "1-29-6", "istio-system", overwrite=overwrite)
    assert logged(log) == [["tag", "set", "prod-stable", "--revision", "1-29-6", "--istioNamespace",
                            "istio-system", "-y", *tail, *KUBE]]


def test_tag_list_argv_and_table(tmp_path: Path) -> None:
    """tag_list() runs `tag list --istioNamespace <ns>` and parses rows by column, even an empty TAG."""
    istioctl, log, _ = tool(tmp_path)
    result, rows = istioctl.tag_list("istio-system")
    assert logged(log) == [["tag", "list", "--istioNamespace", "istio-system", *KUBE]]
    assert result.returncode == 0
    assert rows == [
        TagRow("default", "1-29-6", ("app-a", "app-b")),
        TagRow("canary", "1-30-3", ("app-c",)),
        TagRow("", "1-30-3", ()),
    ]


def test_uninstall_revision_argv(tmp_path: Path) -> None:
    """uninstall_revision() runs `uninstall --revision <rev> -y`."""
    istioctl, log, _ = tool(tmp_path)
    istioctl.uninstall_revision("1-29-6")
    assert logged(log) == [["uninstall", "--revision", "1-29-6", "-y", *KUBE]]


def test_uninstall_purge_argv(tmp_path: Path) -> None:
    """uninstall_purge() runs `uninstall --purge -y`."""
    istioctl, log, _ = tool(tmp_path)
    istioctl.uninstall_purge()
    assert logged(log) == [["uninstall", "--purge", "-y", *KUBE]]


@pytest.mark.parametrize(("version", "output"), [("1.18.5", "1.18.5"), ("1.30.3", "client version: 1.30.3")])
def test_verify_version_reads_both_formats(tmp_path: Path, version: str, output: str) -> None:
    """verify_version() accepts the bare (<1.23) and `client version:` (1.23+) outputs, without kube flags."""
    istioctl, log, _ = tool(tmp_path, version, output)
    istioctl.verify_version()
    assert istioctl.client_version() == IstioVersion.parse(version)
    assert logged(log) == [["version", "--remote=false"]] * 2


@pytest.mark.parametrize(("version", "output"), [("1.30.3", "1.18.5"), ("1.18.5", "client version: 1.30.3")])
def test_verify_version_mismatch_is_a_usage_error(tmp_path: Path, version: str, output: str) -> None:
    """A binary reporting another version than expected is refused with UsageError naming both."""
    istioctl, _, fake = tool(tmp_path, version, output)
    with pytest.raises(UsageError) as info:
        istioctl.verify_version()
    found = IstioVersion.parse(output.split()[-1])
    assert str(info.value) == f"{fake} is istioctl {found}, expected {version}"


def test_unreadable_version_is_a_usage_error(tmp_path: Path) -> None:
    """Output without any X.Y.Z is reported as unreadable rather than crashing."""
    istioctl, _, _ = tool(tmp_path, "1.30.3", "no version here")
    with pytest.raises(UsageError, match="cannot read its version"):
        istioctl.verify_version()


def test_recording_runner_redacts_tokens(tmp_path: Path) -> None:
    """RecordingRunner writes one transcript line per command with `--token=...` redacted."""
    fake, log = make_fake(tmp_path, "1.30.3")
    transcript = Transcript(tmp_path / "reports" / "transcript.jsonl")
    runner = RecordingRunner(SubprocessRunner(), transcript, "kind")
    result = runner.run([str(fake), "proxy-status", "--token=abc", *KUBE], timeout=30)
    assert result.argv[2] == "--token=abc"  # the command itself gets the real value
    assert logged(log) == [["proxy-status", "--token=abc", *KUBE]]
    lines = transcript.path.read_text().splitlines()
    assert len(lines) == 1
    assert "abc" not in lines[0]
    entry = json.loads(lines[0])
    assert entry["argv"] == [str(fake), "proxy-status", "--token=<redacted>", *KUBE]
    assert entry["backend"] == "kind" and entry["returncode"] == 0 and entry["seconds"] >= 0
