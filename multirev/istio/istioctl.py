"""istioctl bound to one Istio version and one cluster, building version-aware argv.

The same argv goes to a real istioctl (kind, existing) or to the simulated model, so every
simulated run also exercises this command building.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from multirev.commands import Completed, Runner
from multirev.errors import UsageError
from multirev.istio import facts
from multirev.istio.capabilities import supports
from multirev.istio.versions import IstioVersion

INSTALL_TIMEOUT = 600.0  # istioctl's own --readiness-timeout defaults to 300s (operator/cmd/mesh/install.go)
QUICK_TIMEOUT = 120.0


@dataclass(frozen=True)
class KubeTarget:
    """Root flags --kubeconfig/-c and --context exist in every supported minor
    (istio@1.18.5:istioctl/cmd/root.go, istio@1.30.3:istioctl/pkg/cli/option.go)."""

    kubeconfig: str | None = None
    context: str | None = None

    def flags(self) -> list[str]:
        out = []
        if self.kubeconfig:
            out += ["--kubeconfig", self.kubeconfig]
        if self.context:
            out += ["--context", self.context]
        return out


@dataclass(frozen=True)
class TagRow:
    tag: str
    revision: str
    namespaces: tuple[str, ...]


class Istioctl:
    def __init__(self, binary: str, version: IstioVersion, runner: Runner, target: KubeTarget) -> None:
        self.binary = binary
        self.version = version
        self.runner = runner
        self.target = target

    def argv(self, *args: str) -> list[str]:
        return [self.binary, *args, *self.target.flags()]

    def _run(self, *args: str, timeout: float = QUICK_TIMEOUT) -> Completed:
        return self.runner.run(self.argv(*args), timeout=timeout)

    # -- version -----------------------------------------------------------------------------
    def client_version(self) -> IstioVersion:
        """`version --remote=false` prints a bare `X` before 1.23 and `client version: X` after
        (istio@1.22.0 vs istio@1.23.0:pkg/version/cobra.go)."""
        out = self.runner.run([self.binary, "version", "--remote=false"], timeout=QUICK_TIMEOUT).check().stdout
        match = re.search(r"(\d+\.\d+(?:\.\d+(?:-[a-z]+\.\d+)?|-dev))", out)
        if not match:
            raise UsageError(f"{self.binary}: cannot read its version from {out.strip()[:80]!r}")
        return IstioVersion.parse(match.group(1))

    def verify_version(self) -> None:
        found = self.client_version()
        if found != self.version:
            raise UsageError(f"{self.binary} is istioctl {found}, expected {self.version}")

    # -- install / uninstall -------------------------------------------------------------------
    def install(self, iop_file: Path) -> Completed:
        """`install -f <iop> -y` (-f/--filename, -y/--skip-confirmation: operator/cmd/mesh/install.go
        at 1.18.5 and 1.30.3). Prints `✔ Installation complete` on success."""
        return self._run("install", "-f", str(iop_file), "-y", timeout=INSTALL_TIMEOUT)

    def uninstall_revision(self, revision: str, iop_file: Path | None = None) -> Completed:
        """`uninstall --revision <rev> [-f <iop>] -y` (operator/cmd/mesh/uninstall.go, 1.18.5 and 1.30.3).
        From 1.24 a revision uninstall prunes only objects whose owning-resource labels match the IstioOperator
        it is given, the default profile's (`istio-system`, no name) without -f (istio@1.24.0:operator/cmd/mesh/
        uninstall.go, operator/pkg/uninstall/prune.go GetPrunedResources), so a revision installed elsewhere
        needs its own file; before 1.24 the file changes nothing (helmreconciler/prune.go selects by revision)."""
        if not supports(self.version, "uninstall-command"):
            raise UsageError(f"istioctl {self.version} has no top-level `uninstall` command")
        file_args = ["-f", str(iop_file)] if iop_file is not None else []
        return self._run("uninstall", "--revision", revision, *file_args, "-y", timeout=INSTALL_TIMEOUT)

    def uninstall_purge(self) -> Completed:
        return self._run("uninstall", "--purge", "-y", timeout=INSTALL_TIMEOUT)

    # -- revision tags -------------------------------------------------------------------------
    def tag_set(self, tag: str, revision: str, istio_namespace: str, *, overwrite: bool = False) -> Completed:
        """`tag set <tag> --revision <rev> -i <ns>`: the tag webhook's service namespace is the -i value,
        not where the revision runs (istio@1.30.3:istioctl/pkg/tag/generate.go), so -i is always passed."""
        if not supports(self.version, "tag-command"):
            raise UsageError(f"istioctl {self.version} has no `tag` command")
        args = ["tag", "set", tag, "--revision", revision, "--istioNamespace", istio_namespace, "-y"]
        if overwrite:
            args.append("--overwrite")
        return self._run(*args)

    def tag_remove(self, tag: str, istio_namespace: str) -> Completed:
        return self._run("tag", "remove", tag, "--istioNamespace", istio_namespace, "-y")

    def tag_list(self, istio_namespace: str) -> tuple[Completed, list[TagRow]]:
        """The table form, the only one every minor prints (no -o on 1.18/1.19's top-level `tag list`)."""
        result = self._run("tag", "list", "--istioNamespace", istio_namespace)
        return result, parse_tag_table(result.stdout) if result.returncode == 0 else []

    # -- diagnostics ---------------------------------------------------------------------------
    def proxy_config_bootstrap(self, pod: str, namespace: str) -> Completed:
        return self._run("proxy-config", "bootstrap", f"{pod}.{namespace}", "-o", "json")

    def proxy_status(self, revision: str, istio_namespace: str) -> Completed:
        """`proxy-status -r <rev> -i <ns>`: which proxies a revision's istiod serves. It asks the istiod pods of the
        revision in the `-i` namespace, istio-system unless given, and finds none of a revision elsewhere
        (istio@1.30.3: istioctl/pkg/proxystatus/proxystatus.go through istioctl/pkg/multixds/gather.go; `-i` is
        the root flag of istioctl/pkg/cli/option.go)."""
        return self._run("proxy-status", "--revision", revision, "--istioNamespace", istio_namespace)

    def analyze(self, namespace: str, revision: str, istio_namespace: str) -> Completed:
        """`analyze --namespace <ns> --revision <rev> --istioNamespace <istio ns>`: without --revision analyze reads
        Istio config as revision `default`, which leaves out every object labelled istio.io/rev=<another>
        (istio@1.30.3:istioctl/pkg/analyze/analyze.go, pkg/config/model.go LabelsInRevision; 1.18.5:
        istioctl/cmd/analyze.go has the same flag), and it reads that revision's mesh config from the istio
        namespace."""
        return self._run("analyze", "--namespace", namespace, "--revision", revision,
                         "--istioNamespace", istio_namespace)


def parse_tag_table(text: str) -> list[TagRow]:
    """Parse `tag list` output by the header's column offsets: since 1.21 untagged revisions are listed
    with an empty TAG column, which whitespace splitting would misread."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    header_index = next((i for i, line in enumerate(lines) if line.split()[:3] == list(facts.TAG_LIST_HEADER)), None)
    if header_index is None:
        return []
    header = lines[header_index]
    starts = [header.index(col) for col in facts.TAG_LIST_HEADER]
    rows = []
    for line in lines[header_index + 1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        namespaces = tuple(n for n in cells[2].split(",") if n)
        rows.append(TagRow(cells[0], cells[1], namespaces))
    return rows
