"""Evidence for people: allure steps and attachments, always redacted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import allure

from multirev.redact import redact_text


def text(name: str, body: str) -> None:
    allure.attach(redact_text(body), name=name, attachment_type=allure.attachment_type.TEXT)


def png(name: str, data: bytes) -> None:
    allure.attach(data, name=name, attachment_type=allure.attachment_type.PNG)


@contextmanager
def action(title: str) -> Iterator[None]:
    with allure.step(title):
        yield
