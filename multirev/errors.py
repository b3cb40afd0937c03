"""Errors the suite reports to users as one clear line."""


class UsageError(Exception):
    """Bad input (an option, a version, a profile, a kubeconfig): reported before anything is created."""


class EnvironmentProblem(UsageError):
    """Something the chosen backend needs is missing (Docker, a reachable mirror, a cluster)."""


class CommandFailed(Exception):
    """An external command (istioctl, kind) exited non-zero."""

    def __init__(self, argv: list[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        tail = (stderr.strip() or stdout.strip()).splitlines()[-3:]
        super().__init__(f"{' '.join(argv[:3])} ... exited {returncode}: {' | '.join(tail)}")


class WaitTimeout(AssertionError):
    """A bounded wait ran out; the message names what was awaited and the last state seen."""


class TeardownIncomplete(EnvironmentProblem):
    """On a cluster the run does not own, teardown could not give everything back; the run record stays, so that
    `./run cleanup` can finish the job."""


class AdmissionRefused(Exception):
    """The API server refused an object at admission: a webhook denied it or could not be called. The message is
    the server's own (`admission webhook "<name>" denied the request: ...`, `failed calling webhook ...`)."""
