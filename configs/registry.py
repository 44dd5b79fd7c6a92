"""Model store and signing section (owned by the registry).

Only *where* keys live is configured here; key material itself comes from the environment
(``EDGEFLOW_HMAC_KEYS``) or from the files named below, read at the entry point.
"""

from __future__ import annotations

from pathlib import Path
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
    signing_key_id: str | None = Field(
        default=None,
        description="Key id that signs (EDGEFLOW_SIGNING_KEY_ID overrides); default: the only "
        "signing key of `algorithm`.",
    )
    hmac_keys_file: Path | None = Field(
        default=None,
        description="File of 'id:hex' lines (HMAC keys, >= 32 bytes each), read at start-up; "
        "keys in EDGEFLOW_HMAC_KEYS are added to these.",
    )
    ed25519_private_key_file: Path | None = Field(
        default=None, description="PEM (PKCS#8) Ed25519 private key that signs, if any."
    )
    ed25519_key_id: str = Field(
        default="ed25519", description="Key id of `ed25519_private_key_file`."
    )
    ed25519_public_key_files: dict[str, Path] = Field(
        default_factory=dict,
        description="Key id -> PEM Ed25519 public key trusted for verification (consumers).",
    )
    client_cache_dir: Path | None = Field(
        default=None,
        description="Where a ModelClient keeps its last good models; default <workdir>/client.",
    )
