"""Transport security: which server certificates this home trusts, and no cleartext HTTP
beyond this machine unless the user says so.

Rules (docs/CLI.md "TLS"):

1. **Trust.**  Without a CA file the system's trust store is used.  ``--ca FILE`` (on
   ``init``, ``join``, ``talks found`` and ``server set-url``) copies FILE into the home
   as ``server-ca.pem`` and from then on *only* the certificates in it are trusted for
   this home's server: a private CA, or the server's own (self-signed or not)
   certificate, which is then pinned: partial chains are accepted, so a certificate in
   the file is trusted as is.  Host names and validity dates are always checked.
2. **Cleartext.**  ``http://`` to anything but a loopback address (``localhost``,
   127.0.0.0/8, ``::1``) is refused (``insecure_url``) unless ``--insecure`` is given;
   given together with a URL that is stored (``init``, ``join``, ``server set-url``),
   the consent is stored with that exact URL.  Bearer tokens, metadata and the server's
   answers would otherwise cross the network readable and changeable by anyone on the
   path; end-to-end encryption still protects draft contents, not the rest.
3. **Failures.**  A certificate that does not verify is one line with the code
   ``tls_verify_failed`` and OpenSSL's reason (wrong host name, expired, untrusted
   issuer), never a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from client.errors import NetworkError, UsageError

CA_FILE = "server-ca.pem"
"""The home's trusted server certificates (PEM), when ``--ca`` was given."""
MAX_CA_FILE = 1024 * 1024


class TlsError(NetworkError):
    """The server's TLS certificate did not verify (``tls_verify_failed``)."""

    code = "tls_verify_failed"


def home_ca(home: Path) -> Path | None:
    """The home's CA file, or ``None`` (system trust store)."""
    path = home / CA_FILE
    return path if path.is_file() else None


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying TLS client context: the system roots, or only ``ca_file``'s."""
    try:
        context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"cannot load the CA file {ca_file}: {_reason(exc)}", code="bad_ca"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        # Pinning: a certificate in the file is trusted as is, not only as an issuer.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def check_ca_file(path: Path) -> None:
    """Refuse a CA file that is missing, too large or holds no usable certificate."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UsageError(f"--ca {path}: {exc.strerror}", code="bad_ca") from None
    if size > MAX_CA_FILE:
        raise UsageError(f"--ca {path}: larger than 1 MiB", code="bad_ca")
    context = client_context(path)
    if not context.cert_store_stats()["x509"]:
        raise UsageError(f"--ca {path}: no PEM certificate in it", code="bad_ca")


def install_ca(home: Path, path: Path) -> Path:
    """Check ``path`` and copy it into ``home`` as its trusted server certificates."""
    check_ca_file(path)
    dest = home / CA_FILE
    tmp = home / (CA_FILE + ".tmp")
    shutil.copyfile(path, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, dest)
    return dest


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a URL's host part) is this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_cleartext_remote(url: str) -> bool:
    """Whether ``url`` is ``http://`` to a host that is not this machine."""
    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.hostname or "")


def check_url(url: str, *, insecure: bool) -> None:
    """Refuse anything but ``https://`` or loopback ``http://`` unless ``insecure``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise UsageError(f"not an http(s) server URL: {url!r}", code="bad_url")
    if is_cleartext_remote(url) and not insecure:
        raise UsageError(
            f"refusing cleartext http:// to {host}: use https:// (with --ca FILE for a "
            "private CA), or pass --insecure to accept that anyone on the path can read "
            "and change the traffic",
            code="insecure_url",
        )


def describe_failure(exc: BaseException) -> str:
    """OpenSSL's reason for a failed certificate check, in one line."""
    return _reason(exc)


def _reason(exc: BaseException) -> str:
    verify = getattr(exc, "verify_message", None)
    if verify:
        return str(verify)
    inner = getattr(exc, "certificate_error", None)
    if inner is not None:
        return _reason(inner)
    reason = getattr(exc, "reason", None)
    return str(reason or exc).splitlines()[0] if str(reason or exc) else type(exc).__name__
