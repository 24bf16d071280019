"""Server settings: defaults < TOML file < ``DOCKET_*`` environment < command line.

Every setting has one name used everywhere: the TOML key (top level or under a
``[server]`` table), the environment variable ``DOCKET_<NAME>`` in upper case, and the
dataclass field.  Values are checked once, here, so the rest of the server can trust
them.  Errors are :class:`ConfigError` with a one-line message for the CLI.

``DOCKET_FAULT`` is not a setting: it arms a test-only crash point (server/faults.py)
and is inert unless set.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024

KEY_FILE = "checkpoint.key"
DB_FILE = "docket.db"
CHECKPOINT_FILE = "checkpoint.txt"
BLOB_DIR = "blobs"
MAX_WITNESS_URLS = 64
_URL_RE = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")
_ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


class ConfigError(Exception):
    """A setting that is missing, malformed or out of range (one line, for the CLI)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the server can be told.  Times in seconds, sizes in bytes."""

    data: Path
    host: str = "127.0.0.1"
    port: int = 8470
    tls_cert: Path | None = None
    tls_key: Path | None = None
    checkpoint_interval: float = 1.0
    max_body: int = 1 * MIB
    """Largest JSON request body."""
    max_draft: int = 64 * MIB
    """Largest draft ciphertext."""
    public_tiles: bool = False
    """Serve ``/checkpoint`` and ``/tile/...`` without a token, cacheable by anyone (a CDN,
    an outside monitor or witness).  They hold the log's entries: the roster, channel
    names and the metadata of every draft and receipt (never plaintext)."""
    max_annex: int = 4 * 1024 * MIB
    """Largest annex (plaintext bytes), sent as a chunked stream beside its draft."""
    max_open_annexes: int = 8
    """Most unfinished annex uploads one device may hold."""
    batch_max: int = 1024
    """Most entries the sequencer commits in one transaction."""
    token_ttl: float = 15 * 60
    challenge_ttl: float = 60
    max_challenges: int = 100_000
    invitation_ttl: float = 7 * 24 * 3600
    max_skew: float = 10 * 60
    """Largest accepted distance between a record's ``time`` and the server clock."""
    rate: float = 100.0
    """Requests per second per device (token bucket refill)."""
    rate_burst: int = 400
    ip_rate: float = 50.0
    """Requests per second per client address on unauthenticated routes."""
    ip_burst: int = 200
    body_timeout: float = 30.0
    """Longest time to receive a JSON body, or to wait for the next chunk of an upload."""
    upload_timeout: float = 600.0
    """Longest time to receive a whole draft upload, or to send a whole ciphertext."""
    header_timeout: float = 30.0
    """Idle time before a connection that has not sent a complete request is closed."""
    shutdown_timeout: float = 10.0
    long_poll_max: float = 30.0
    ws_max_msg: int = 4096
    ws_heartbeat: float = 30.0
    ws_send_timeout: float = 10.0
    ws_max_clients: int = 1000
    ws_max_per_device: int = 8
    quota_window: float = 3600.0
    """The window of the per-participant quotas (server/services/quota.py)."""
    quota_drafts: int = 100_000
    """Drafts one participant may upload per ``quota_window`` (0: no quota)."""
    quota_bytes: int = 32 * 1024 * MIB
    """Upload bytes one participant may send per ``quota_window`` (0: no quota)."""
    max_conns_per_ip: int = 256
    """Open connections one client address may hold (more are answered 503 and closed)."""
    ws_origins: str = ""
    """Browser origins allowed to open WebSockets besides the server's own
    (comma-separated ``scheme://host[:port]``); no ``Origin`` header is always allowed."""
    read_threads: int = 2
    log_level: str = "info"
    witness_urls: tuple[tuple[str, str], ...] = ()
    """Witness name -> base URL of its tlog-witness API (the server POSTs
    ``<url>/add-checkpoint``).  Only witnesses the log itself trusts (the roster's
    witnesses, genesis ``external`` ones) are contacted; their keys come from the log."""
    witness_refresh: float = 30.0
    """Re-submit the latest checkpoint this often on a quiet log (fresh timestamps)."""
    witness_timeout: float = 5.0
    """Longest wait for one witness's answer."""
    high_water: Path | None = None
    """A file outside the data directory that records every signed checkpoint before it
    is stored (server/highwater.py): a restored older copy is then refused writes."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError("port must be between 0 and 65535")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key must be given together")
        positive = (
            "checkpoint_interval",
            "max_body",
            "max_draft",
            "max_annex",
            "max_open_annexes",
            "batch_max",
            "token_ttl",
            "challenge_ttl",
            "max_challenges",
            "invitation_ttl",
            "max_skew",
            "rate",
            "rate_burst",
            "ip_rate",
            "ip_burst",
            "body_timeout",
            "upload_timeout",
            "header_timeout",
            "shutdown_timeout",
            "ws_max_msg",
            "ws_heartbeat",
            "ws_send_timeout",
            "ws_max_clients",
            "ws_max_per_device",
            "max_conns_per_ip",
            "quota_window",
            "read_threads",
            "witness_refresh",
            "witness_timeout",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.quota_drafts < 0 or self.quota_bytes < 0:
            raise ConfigError("quota_drafts and quota_bytes must not be negative")
        if not 0 <= self.long_poll_max <= 30:
            raise ConfigError("long_poll_max must be between 0 and 30 seconds")
        if self.batch_max > 100_000:
            raise ConfigError("batch_max must be at most 100000")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError("log_level must be debug, info, warning or error")
        for origin in self.ws_origins.split(","):
            if origin.strip() and not _ORIGIN_RE.fullmatch(origin.strip()):
                raise ConfigError(f"ws_origins: not a scheme://host[:port] origin: {origin!r}")
        names = [name for name, _ in self.witness_urls]
        if len(set(names)) != len(names) or len(names) > MAX_WITNESS_URLS:
            raise ConfigError(
                f"witness_urls: each witness at most once (at most {MAX_WITNESS_URLS})"
            )
        for name, url in self.witness_urls:
            if not name or any(c.isspace() or c in "=," for c in name):
                raise ConfigError(f"witness_urls: invalid witness name {name!r}")
            if not _URL_RE.fullmatch(url):
                raise ConfigError(f"witness_urls: {name}: not an http(s) base URL: {url!r}")

    @property
    def witness_url_map(self) -> dict[str, str]:
        """Witness name -> base URL without a trailing slash."""
        return {name: url.rstrip("/") for name, url in self.witness_urls}

    # -- derived paths ----------------------------------------------------------------

    @property
    def key_path(self) -> Path:
        """The checkpoint key file."""
        return self.data / KEY_FILE

    @property
    def db_path(self) -> Path:
        """The SQLite database."""
        return self.data / DB_FILE

    @property
    def checkpoint_path(self) -> Path:
        """The published ``checkpoint.txt``."""
        return self.data / CHECKPOINT_FILE

    @property
    def blob_dir(self) -> Path:
        """Where draft ciphertexts live."""
        return self.data / BLOB_DIR

    @property
    def tls(self) -> bool:
        """Whether to serve HTTPS."""
        return self.tls_cert is not None

    @property
    def loopback(self) -> bool:
        """Whether :attr:`host` only listens on this machine."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    # -- loading ----------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        *,
        cli: Mapping[str, object],
        env: Mapping[str, str],
        config: Path | None = None,
    ) -> Settings:
        """Merge the sources (CLI > env > TOML > defaults); ``None`` CLI values are unset."""
        values: dict[str, object] = {}
        if config is not None:
            values.update(_from_toml(config))
        for name in _FIELDS:
            raw = env.get(f"DOCKET_{name.upper()}")
            if raw is not None and raw != "":
                values[name] = raw
        for name, value in cli.items():
            if value is not None:
                values[name] = value
        if "data" not in values:
            raise ConfigError("no data directory: pass --data DIR or set DOCKET_DATA")
        kwargs = {name: _coerce(name, value) for name, value in values.items()}
        return cls(**kwargs)  # type: ignore[arg-type]


_FIELDS: dict[str, str] = {f.name: str(f.type) for f in dataclasses.fields(Settings)}


def _from_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    table = doc.get("server", doc)
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: [server] must be a table")
    out: dict[str, object] = {}
    for key, value in table.items():
        if key == "server" and table is doc:
            continue
        if key not in _FIELDS:
            raise ConfigError(f"config file {path}: unknown setting {key!r}")
        out[key] = value
    return out


def _name_urls(value: object) -> tuple[tuple[str, str], ...]:
    """A TOML table ``{name = url}`` or the environment's ``name=url,name=url``."""
    if isinstance(value, tuple):
        pairs = list(value)
    elif isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for item in value.split(","):
            name, sep, url = item.strip().partition("=")
            if not sep:
                raise ValueError
            pairs.append((name.strip(), url.strip()))
    else:
        raise ValueError
    out = []
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValueError
        name, url = pair
        if not isinstance(name, str) or not isinstance(url, str):
            raise ValueError
        out.append((name, url))
    return tuple(sorted(out))


def _coerce(name: str, value: object) -> object:
    """Turn a TOML, environment or CLI value into the field's type."""
    if name not in _FIELDS:
        raise ConfigError(f"unknown setting {name!r}")
    kind = _FIELDS[name]
    try:
        if kind in {"Path", "Path | None"}:
            if not isinstance(value, (str, Path)) or str(value) == "":
                raise ValueError
            return Path(value)
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                raise ValueError
            return number
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError
            return value
        if kind == "bool":
            if isinstance(value, bool):
                return value
            words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
            if not isinstance(value, str) or value.strip().lower() not in words:
                raise ValueError
            return words[value.strip().lower()]
        if kind == "tuple[tuple[str, str], ...]":
            return _name_urls(value)
    except ValueError:
        raise ConfigError(f"setting {name}: invalid value {value!r}") from None
    raise ConfigError(f"setting {name}: unsupported type {kind}")  # pragma: no cover
