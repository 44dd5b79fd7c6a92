"""Registry fixtures: a store per backend (file and a real S3 server), keys, tiny ONNX models."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest
from registry_support import KEY_HEX, expected_scores, make_onnx  # noqa: F401

from pipelines.registry import HmacKey, KeyRing, MemoryStore, Store, open_store


@pytest.fixture()
def keyring() -> KeyRing:
    return KeyRing([HmacKey("k1", bytes.fromhex(KEY_HEX))], signing_key_id="k1")


@pytest.fixture(params=["file", "s3"])
def store_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URI per backend; tests may narrow it with indirect parametrization."""
    if request.param == "memory":
        return "memory://"
    if request.param == "file":
        return f"file://{tmp_path / 'store'}"
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/models"


@pytest.fixture()
def store(store_uri: str, request: pytest.FixtureRequest) -> Store:
    if store_uri == "memory://":
        return MemoryStore()
    if store_uri.startswith("s3://"):
        endpoint = request.getfixturevalue("s3_endpoint")
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        return open_store(store_uri, s3_client=client)
    return open_store(store_uri)


@pytest.fixture()
def child_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment of a child publisher: this one's (nothing in it needs a fixed hash
    seed: every signed byte is canonical JSON or a canonical ONNX export)."""
    return dict(os.environ)
