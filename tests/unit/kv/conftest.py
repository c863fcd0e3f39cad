"""Shared fixtures for the KV state machine tests."""

from __future__ import annotations

import pytest

from aspen.kv import KvStateMachine


@pytest.fixture
def kv() -> KvStateMachine:
    return KvStateMachine()
