"""One typed Settings object, read from the environment and an optional ``.env``.

Every value is validated at start-up; :func:`describe_errors` turns a validation failure
into one line per variable, naming it, for the CLI to print instead of a traceback.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from relay.redis.keys import check_stream_name

DEFAULT_WEBHOOK_PATH = "/webhooks/anyformat"
MAX_URL_LENGTH = 2083  # the provider's OpenAPI limit for webhook URLs
MIN_ADMIN_TOKEN = 16  # with 10 tries a minute per address, guessing stays out of reach

Port = Annotated[int, Field(ge=0, le=65535)]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def decode_standard_secret(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64 after the optional ``whsec_``."""
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("is not a Standard Webhooks secret (whsec_ + base64)") from None
    if not key:
        raise ValueError("is empty")
    return key


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
    )

    redis_url: str = Field("redis://localhost:6379/0", validation_alias="RELAY_REDIS_URL")
    redis_cluster: bool = Field(False, validation_alias="RELAY_REDIS_CLUSTER")
    redis_timeout: float = Field(5.0, gt=0, validation_alias="RELAY_REDIS_TIMEOUT")
    redis_sentinels: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="RELAY_REDIS_SENTINELS"
    )
    redis_sentinel_master: str = Field(
        "mymaster", min_length=1, validation_alias="RELAY_REDIS_SENTINEL_MASTER"
    )
    redis_sentinel_password: SecretStr | None = Field(
        None, validation_alias="RELAY_REDIS_SENTINEL_PASSWORD"
    )
    redis_wait_replicas: int = Field(0, ge=0, validation_alias="RELAY_REDIS_WAIT_REPLICAS")
    # Milliseconds, as WAIT takes them; 0 would make WAIT block forever.
    redis_wait_timeout: int = Field(1000, ge=1, validation_alias="RELAY_REDIS_WAIT_TIMEOUT")

    public_url: str | None = Field(None, validation_alias="RELAY_PUBLIC_URL")
    anyformat_api_key: SecretStr | None = Field(None, validation_alias="ANYFORMAT_API_KEY")
    anyformat_base_url: str = Field(
        "https://api.anyformat.ai", validation_alias="ANYFORMAT_BASE_URL"
    )
    events: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["extraction.completed", "extraction.failed"],
        validation_alias="RELAY_EVENTS",
        min_length=1,
    )
    self_register: bool = Field(True, validation_alias="RELAY_REGISTER")

    webhook_secret: SecretStr | None = Field(None, validation_alias="RELAY_WEBHOOK_SECRET")
    signature_scheme: Literal["standard", "hmac-sha256"] = Field(
        "standard", validation_alias="RELAY_SIGNATURE_SCHEME"
    )
    signature_tolerance: int = Field(300, ge=0, validation_alias="RELAY_SIGNATURE_TOLERANCE")
    hmac_header: str = Field("X-Signature", min_length=1, validation_alias="RELAY_HMAC_HEADER")
    secret_refresh_interval: float = Field(
        2.0, gt=0, validation_alias="RELAY_SECRET_REFRESH_INTERVAL"
    )
    secret_encryption_key: SecretStr | None = Field(
        None, validation_alias="RELAY_SECRET_ENCRYPTION_KEY"
    )
    registration_recheck_interval: float = Field(
        300.0, gt=0, validation_alias="RELAY_REGISTRATION_RECHECK_INTERVAL"
    )
    reconcile: bool = Field(True, validation_alias="RELAY_RECONCILE")
    reconcile_interval: float = Field(3600.0, gt=0, validation_alias="RELAY_RECONCILE_INTERVAL")
    reconcile_max_lookback: float = Field(
        604_800.0, gt=0, validation_alias="RELAY_RECONCILE_MAX_LOOKBACK"
    )

    host: str = Field("0.0.0.0", min_length=1, validation_alias="RELAY_HOST")
    port: Port = Field(8080, validation_alias="RELAY_PORT")
    webhook_path: str | None = Field(None, validation_alias="RELAY_WEBHOOK_PATH")
    tls_cert_file: Path | None = Field(None, validation_alias="RELAY_TLS_CERT_FILE")
    tls_key_file: Path | None = Field(None, validation_alias="RELAY_TLS_KEY_FILE")
    admin_port: Port = Field(9090, validation_alias="RELAY_ADMIN_PORT")
    # Unset: the admin listener binds RELAY_HOST (what Kubernetes probes and scrapes need).
    admin_host: str | None = Field(None, min_length=1, validation_alias="RELAY_ADMIN_HOST")
    # Unset: no operator API or console. A secret: never logged, never shown.
    admin_token: SecretStr | None = Field(None, validation_alias="RELAY_ADMIN_TOKEN")
    client_timeout: float = Field(10.0, gt=0, validation_alias="RELAY_CLIENT_TIMEOUT")
    keepalive_timeout: float = Field(15.0, gt=0, validation_alias="RELAY_KEEPALIVE_TIMEOUT")
    max_connections: int = Field(4096, ge=1, validation_alias="RELAY_MAX_CONNECTIONS")
    trusted_proxies: Annotated[list[Network], NoDecode] = Field(
        default_factory=list, validation_alias="RELAY_TRUSTED_PROXIES"
    )
    shutdown_timeout: float = Field(25.0, gt=0, validation_alias="RELAY_SHUTDOWN_TIMEOUT")
    workers: int = Field(1, ge=1, le=64, validation_alias="RELAY_WORKERS")
    # Set by the supervisor of RELAY_WORKERS > 1 for each serving process; not for users.
    worker_index: int | None = Field(None, ge=0, validation_alias="RELAY_WORKER_INDEX")

    stream_prefix: str = Field("anyformat", min_length=1, validation_alias="RELAY_STREAM_PREFIX")
    # Parsed by the routing code (relay.streams.routes), which the CLI runs at start-up.
    routes_file: Path | None = Field(None, validation_alias="RELAY_ROUTES_FILE")
    stream_maxlen: int = Field(1_000_000, ge=1, validation_alias="RELAY_STREAM_MAXLEN")
    # Seconds; 0: no age target. Both targets spare what a consumer group still needs.
    stream_max_age: int = Field(0, ge=0, validation_alias="RELAY_STREAM_MAX_AGE")
    # 0: off. The memory guard: above it entries go even unread (counted and logged).
    stream_hard_maxlen: int = Field(0, ge=0, validation_alias="RELAY_STREAM_HARD_MAXLEN")
    dedupe_ttl: int = Field(604_800, ge=1, validation_alias="RELAY_DEDUPE_TTL")
    max_body_bytes: int = Field(1_048_576, ge=1, validation_alias="RELAY_MAX_BODY_BYTES")
    max_in_flight: int = Field(512, ge=1, validation_alias="RELAY_MAX_IN_FLIGHT")

    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", validation_alias="RELAY_LOG_LEVEL"
    )
    log_format: Literal["json", "console"] = Field("json", validation_alias="RELAY_LOG_FORMAT")

    @field_validator("events", "redis_sentinels", mode="before")
    @classmethod
    def _events_from_csv(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        parts = _split_commas(value)
        if not isinstance(parts, list):
            return parts
        networks = []
        for part in parts:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or CIDR") from None
        return networks

    @field_validator("log_level", "log_format", "signature_scheme", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            sentinel_address(address)
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        check_https_url(value)
        return value

    @field_validator("anyformat_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host")
        return value.rstrip("/")

    @field_validator("webhook_path")
    @classmethod
    def _webhook_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _split_commas(value.get_secret_value()):
            raise ValueError("is set but holds no secret")
        return value

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < MIN_ADMIN_TOKEN:
            raise ValueError(
                f"must be at least {MIN_ADMIN_TOKEN} characters (make one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return value

    @field_validator("secret_encryption_key")
    @classmethod
    def _fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                Fernet(value.get_secret_value().encode())
            except (ValueError, binascii.Error):
                raise ValueError(
                    "is not a Fernet key (32 url-safe base64-encoded bytes; make one with "
                    "`relay generate-key`)"
                ) from None
        return value

    @field_validator("stream_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_stream_name(value)

    @field_validator("routes_file", mode="before")
    @classmethod
    def _no_routes_file(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("routes_file")
    @classmethod
    def _routes_file_readable(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                value.open("rb").close()
            except OSError as exc:
                raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
        return value

    @field_validator("tls_cert_file", "tls_key_file")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.port and self.port == self.admin_port:
            raise ValueError("RELAY_ADMIN_PORT must differ from RELAY_PORT")
        if 0 < self.stream_hard_maxlen < self.stream_maxlen:
            raise ValueError(
                "RELAY_STREAM_HARD_MAXLEN must be 0 (off) or at least RELAY_STREAM_MAXLEN"
            )
        if self.redis_sentinels and self.redis_cluster:
            raise ValueError("RELAY_REDIS_SENTINELS and RELAY_REDIS_CLUSTER exclude each other")
        if self.redis_sentinels and urlsplit(self.redis_url).scheme == "unix":
            raise ValueError("RELAY_REDIS_SENTINELS needs a redis:// or rediss:// RELAY_REDIS_URL")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("RELAY_TLS_CERT_FILE and RELAY_TLS_KEY_FILE go together")
        if self.signature_scheme == "standard":
            for secret in self.webhook_secrets:
                try:
                    decode_standard_secret(secret)
                except ValueError as exc:
                    raise ValueError(f"RELAY_WEBHOOK_SECRET {exc}") from None
        return self

    def serving_problems(self) -> list[str]:
        """What stops ``relay run`` from serving; other commands (workers, CLI) don't care."""
        if self.self_register:
            from relay.reserved_domains import reserved_domain

            missing = [
                f"{name} is required while RELAY_REGISTER=true"
                for name, value in (
                    ("ANYFORMAT_API_KEY", self.anyformat_api_key),
                    ("RELAY_PUBLIC_URL", self.public_url),
                )
                if value is None
            ]
            if self.public_url and (domain := reserved_domain(self.public_url)):
                missing.append(
                    f"RELAY_PUBLIC_URL is on the reserved domain {domain} (a placeholder?): "
                    "AnyFormat cannot deliver there; set the relay's real public URL"
                )
            return missing
        if not self.webhook_secrets and self.public_url is None:
            return [
                "RELAY_WEBHOOK_SECRET is required when RELAY_REGISTER=false and "
                "RELAY_PUBLIC_URL is unset (there is no registration record to read)"
            ]
        return []

    @property
    def reconcile_lookback(self) -> float:
        """How far back any reconciliation looks: never past the dedupe memory, or an event
        whose webhook marks have expired would be written a second time."""
        return min(self.reconcile_max_lookback, float(self.dedupe_ttl))

    @property
    def reconciling(self) -> bool:
        """Whether ``relay run`` reconciles: it needs the API key, so registration on."""
        return self.reconcile and self.self_register and self.anyformat_api_key is not None

    @property
    def webhook_secrets(self) -> list[str]:
        if self.webhook_secret is None:
            return []
        parts: list[str] = _split_commas(self.webhook_secret.get_secret_value())
        return parts

    @property
    def admin_bind_host(self) -> str:
        return self.admin_host or self.host

    @property
    def path(self) -> str:
        """The public webhook path: explicit, else that of the public URL, else the default."""
        if self.webhook_path:
            return self.webhook_path
        if self.public_url:
            return urlsplit(self.public_url).path or "/"
        return DEFAULT_WEBHOOK_PATH


def sentinel_address(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) of one Sentinel."""
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not host:port")
    return host, int(port)


def check_https_url(value: str) -> None:
    """The provider accepts only absolute https URLs with a host, at most 2083 characters."""
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    parts = urlsplit(value)
    if parts.scheme != "https":
        raise ValueError("must be an https:// URL (AnyFormat rejects http://)")
    if not parts.hostname:
        raise ValueError("must name a host")


SECRET_FIELDS = frozenset(
    {
        "ANYFORMAT_API_KEY",
        "RELAY_WEBHOOK_SECRET",
        "RELAY_SECRET_ENCRYPTION_KEY",
        "RELAY_REDIS_SENTINEL_PASSWORD",
        "RELAY_ADMIN_TOKEN",
    }
)


def mask_url(value: str) -> str:
    """``value`` with the passwords of a URL in it replaced by ``***`` (any scheme).

    ``redis://user:secret@host/0`` → ``redis://user:***@host/0``, and a ``password=``
    query parameter (which redis-py also reads) likewise; anything else is unchanged.
    """
    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return value.split("://", 1)[0] + "://***"  # unparseable: show the scheme only
    if password:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{hostinfo}")
    if "password=" in parts.query.lower():
        query = [
            (name, "***" if name.lower() == "password" else item)
            for name, item in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


def describe_errors(error: ValidationError) -> list[str]:
    """One line per problem, naming the variable; never echoes a secret's value."""
    lines = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else ""
        message = item["msg"].removeprefix("Value error, ")
        if name and name not in SECRET_FIELDS and "input" in item and item["type"] != "value_error":
            shown = item["input"]
            if isinstance(shown, str):
                shown = mask_url(shown)
            message = f"{message} (got {shown!r})"
        lines.append(f"{name}: {message}" if name else message)
    return lines
