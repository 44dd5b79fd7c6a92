"""Model store and signing section (owned by the registry).

Only *where* keys live is configured here; key material itself comes from the environment
(``EDGEFLOW_HMAC_KEYS``) or from the files named below, read at the entry point.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from configs.base import Section

# a field name that suggests key material was put into the config (or an
# EDGEFLOW_REGISTRY__* variable); such values are refused without being shown
_SECRETISH = re.compile(r"(secret|password|token|hmac_keys?$|private_key$|^keys?$)")


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
    algorithm: Literal["hmac-sha256", "ed25519"] | None = Field(
        default=None,
        description="Signature scheme; default ed25519 when environment is production (bots "
        "hold only public keys), else hmac-sha256. With ed25519, HMAC documents are refused.",
    )
    revoked_key_ids: list[str] = Field(
        default_factory=list,
        description="Key ids refused even while configured (a compromised key).",
    )
    key_scopes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Key id -> models it may sign; documents of other models signed with it "
        "are refused. Keys without an entry may sign any model.",
    )
    pointer_ttl_hours: float = Field(
        default=72.0, gt=0, description="A signed pointer expires this long after signing."
    )
    max_pointer_age_hours: float | None = Field(
        default=None,
        gt=0,
        description="A consumer that serves nothing yet refuses a pointer older than this.",
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
    promotion: Literal["direct", "shadow"] = Field(
        default="direct",
        description="direct: a challenger that beats its champion moves LATEST. shadow: it is "
        "published under CHALLENGER, the bot shadows it, and the next run promotes it only "
        "if its shadow decisions confirm the lift (docs/bot.md).",
    )
    min_shadow_decisions: int = Field(
        default=500,
        ge=1,
        description="Scored shadow decisions a challenger needs before it can be promoted.",
    )
    shadow_events: Path | None = Field(
        default=None,
        description="Folder of the bots' shadow logs (edgeflow.shadow/1); default "
        "<workdir>/shadow.",
    )
    shadow_ci_level: float = Field(
        default=0.95, gt=0, lt=1, description="One-sided level of the shadow lift's lower bound."
    )
    shadow_bootstrap_block: int = Field(
        default=24, ge=1, description="Block length (decisions) of the shadow bootstrap."
    )
    shadow_n_bootstrap: int = Field(
        default=500, ge=50, description="Block-bootstrap resamples of the shadow lift."
    )
    client_cache_dir: Path | None = Field(
        default=None,
        description="Where a ModelClient keeps its last good models; default <workdir>/client.",
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_key_material(cls, data: Any) -> Any:
        """Key material never comes from config; refuse it without echoing the value."""
        if isinstance(data, dict):
            for name in data:
                if (
                    isinstance(name, str)
                    and name not in cls.model_fields
                    and _SECRETISH.search(name.lower())
                ):
                    raise ValueError(
                        f"registry.{name}: key material is never read from the config or "
                        "EDGEFLOW_REGISTRY__* variables (value not shown); use "
                        "EDGEFLOW_HMAC_KEYS=id:hex or registry.hmac_keys_file"
                    )
        return data
