"""Model store and signing section (owned by the registry)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from configs.base import Section


class RegistryConfig(Section):
    """Where models are published and how they are signed."""

    store: str | None = Field(
        default=None,
        description="file://PATH or s3://BUCKET/PREFIX; default: file://<workdir>/store.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint; else AWS_ENDPOINT_URL or AWS."
    )
    keep_last: int = Field(default=5, ge=1, description="Versions kept per model.")
    algorithm: Literal["hmac-sha256", "ed25519"] = Field(
        default="hmac-sha256", description="Signature scheme."
    )
