"""The one settings object, read from `PLINTH_*` environment variables and CLI flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything Plinth can be told at start. Passed down; never imported as a global."""

    model_config = SettingsConfigDict(env_prefix="PLINTH_", extra="ignore")

    data_dir: Path = Field(default=Path("plinth-data"), description="Where embedded data lives")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the platform database; default: SQLite in data_dir",
    )
    redis_url: str | None = Field(default=None, description="Redis for scale-out; off = in-process")
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(
        default=None,
        description="Where this platform's server is reached, e.g. https://plinth.example.com; "
        "connector URLs that start with / resolve against it. Default: http://HOST:PORT",
    )
    admin_token: str | None = Field(
        default=None, description="Preset the platform admin token instead of generating one"
    )
    master_key: str | None = Field(
        default=None, description="Base64 32-byte master key for envelope encryption"
    )
    audit_anchor: str | None = Field(
        default=None,
        description="Where the audit ledger's newest checkpoints are copied, outside the "
        "database: a file path or an http(s) URL; `plinth audit verify` checks against it",
    )
    audit_anchor_every: float = Field(
        default=60.0, gt=0, description="Seconds between exports to the audit anchor"
    )
    regions: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description='Data regions as JSON: {"eu": {"url": "...", "location": "eu-central"}}; '
        'the platform database is always region "default"',
    )
    default_location: str = Field(
        default="local", description="Location of the default region (e.g. eu-central)"
    )
    max_body_bytes: int = 1_048_576
    tenant_files_open: int | None = Field(
        default=None,
        ge=1,
        description="Tenant database files (SQLite) kept open at once; the least recently "
        "used idle one is closed beyond it (default: from the open-files limit, at most 256)",
    )
    tenant_pool_size: int = Field(
        default=3,
        ge=1,
        description="Connections one tenant's database file may have open under load "
        "(one stays open while it is idle)",
    )
    app_cache: int = Field(
        default=10_000,
        ge=1,
        description="Published apps whose compiled form and policy set stay cached; the "
        "least recently used are dropped beyond it and loaded again on their next use",
    )
    plugin_measure_memory: bool = Field(
        default=True,
        description="Record each plugin call's peak memory: the guest's linear memory in "
        "bytes when the call returns, read from the worker's memory map (Linux; none "
        "elsewhere, with a log line); off records none",
    )
    plugin_workers: int | None = Field(
        default=None,
        description="Plugin calls running at once, each in a worker process at low CPU "
        "priority (default: two per core, at least 2)",
    )
    plugin_tenant_workers: int | None = Field(
        default=None,
        description="Plugin calls one tenant may run at once (default: half the workers); "
        "more wait in a fair queue, or are refused (429) when they cannot start in time",
    )
    plugin_max_package_bytes: int = Field(
        default=64 << 20, description="Largest plugin package `POST /api/plugins` accepts"
    )
    plugin_cache_dir: Path | None = Field(
        default=None,
        description="Compiled plugin artifacts; default: PLINTH_CACHE_DIR (else "
        "~/.cache/plinth)/compiled, shared by every data dir",
    )
    embedded_worker: bool = True
    siblings_dir: Path | None = Field(
        default=None,
        description="Set by `plinth serve --workers N` without Redis: where its worker "
        "processes' sockets are, through which they tell each other what changed",
    )
    egress_allow: str = Field(
        default="",
        description="CIDRs outbound calls may reach despite the SSRF guard, "
        "comma-separated (e.g. 10.20.0.0/16); loopback and private networks are refused otherwise",
    )
    log_level: str = "info"
    demo: bool = Field(
        default=False,
        description="Serve the demo's stand-in services (/demo/fx); set by `plinth demo`",
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'plinth.db').as_posix()}"

    @property
    def self_url(self) -> str:
        """The base URL of this platform's own server (`public_url`, else where it listens)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        # A server bound to every interface is reached on loopback from its own machine.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
