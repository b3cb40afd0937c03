"""The conformance suite's pytest plugins (options, backend, mesh set-up, reporting)."""

pytest_plugins = [
    "fixtures.options", "fixtures.cluster", "fixtures.mesh", "fixtures.reporting", "fixtures.diagnostics",
]
