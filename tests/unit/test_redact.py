"""Credentials never reach the transcript."""

from __future__ import annotations

from multirev.redact import redact_argv, redact_text


def test_argv_tokens_are_redacted_in_both_forms() -> None:
    assert redact_argv(["istioctl", "--token=abc", "--token", "def", "tag", "list"]) == [
        "istioctl", "--token=<redacted>", "--token", "<redacted>", "tag", "list"]


def test_kubeconfig_fields_and_pem_blocks_are_redacted() -> None:
    text = ("token: s3cr3t\nclient-key-data: QUJD\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
            "Authorization: Bearer xyz")
    redacted = redact_text(text)
    for secret in ("s3cr3t", "QUJD", "MIIB", "xyz"):
        assert secret not in redacted
