"""TLS on the client, against the real ``docket-server`` serving HTTPS on loopback.

Certificates are made here with pyca/cryptography: a private CA and server certificates
that are good, for the wrong host name, expired, issued by another CA, or self-signed.
Each attack is a test: a server presenting a certificate the home does not trust must
get no request at all from the client, and cleartext ``http://`` to a host that is not
this machine is refused unless the user says ``--insecure``.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.client.serverproc import server_env, stop_process
from tests.client.test_e2e import Result, cli, ok

START_TIMEOUT = 30.0
_LISTEN_RE = re.compile(r"listening on (https?://[0-9.]+:[0-9]+)")
NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


@dataclass
class Issued:
    cert: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(dest: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    dest.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = dest / "cert.pem", dest / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return Issued(cert=cert_path, key=key_path)


def make_ca(dest: Path, common: str) -> tuple[Issued, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .sign(key, hashes.SHA256())
    )
    return _write(dest, cert, key), cert, key


def make_server_cert(
    dest: Path,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    names: tuple[str, ...] = ("127.0.0.1", "localhost"),
    not_after: datetime.datetime = NOW + 30 * DAY,
) -> Issued:
    """A server certificate for ``names`` signed by ``issuer`` (``None``: self-signed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    issuer_cert, issuer_key = issuer if issuer is not None else (None, key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(issuer_cert.subject if issuer_cert is not None else _name(names[0]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(NOW - DAY, not_after - DAY))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(issuer_key, hashes.SHA256())
    )
    return _write(dest, cert, key)


@dataclass
class Pki:
    ca: Issued
    good: Issued
    wrong_host: Issued
    expired: Issued
    rogue: Issued
    self_signed: Issued
    other_self_signed: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca, ca_cert, ca_key = make_ca(base / "ca", "Docket test private CA")
    _, rogue_cert, rogue_key = make_ca(base / "rogue-ca", "Someone else's CA")
    return Pki(
        ca=ca,
        good=make_server_cert(base / "good", issuer=(ca_cert, ca_key)),
        wrong_host=make_server_cert(
            base / "wrong-host", issuer=(ca_cert, ca_key), names=("other.example",)
        ),
        expired=make_server_cert(base / "expired", issuer=(ca_cert, ca_key), not_after=NOW - DAY),
        rogue=make_server_cert(base / "rogue", issuer=(rogue_cert, rogue_key)),
        self_signed=make_server_cert(base / "self", issuer=None),
        other_self_signed=make_server_cert(base / "self-other", issuer=None),
    )


@dataclass
class TlsServer:
    url: str
    info: dict[str, str]
    proc: subprocess.Popen[bytes]


Serve = Callable[..., TlsServer]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """``serve(cert)``: init a data directory and serve it over TLS (or plain HTTP)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(cert: Issued | None, name: str = "server") -> TlsServer:
        data = tmp_path / name
        init = subprocess.run(
            [sys.executable, "-m", "server.cli", "init", "--data", str(data), "--origin",
             f"tls.docket.example/{name}", "--json"],
            capture_output=True, timeout=START_TIMEOUT, env=server_env(), check=True,
        )  # fmt: skip
        env = server_env()
        if cert is not None:
            env["DOCKET_TLS_CERT"], env["DOCKET_TLS_KEY"] = str(cert.cert), str(cert.key)
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--data", str(data), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        procs.append(proc)
        return TlsServer(url=_listening(proc), info=json.loads(init.stdout), proc=proc)

    try:
        yield start
    finally:
        for proc in procs:
            stop_process(proc)


def _listening(proc: subprocess.Popen[bytes]) -> str:
    found: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            match = _LISTEN_RE.search(raw.decode(errors="replace"))
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while not ready.wait(timeout=0.1):
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the server did not start in time")
    assert found, "the server exited before listening"
    return found[0]


def found(home: Path, server: TlsServer, url: str, *extra: str) -> Result:
    """``docket talks found`` against ``server`` at ``url``."""
    return cli(
        home, "--server", url, "talks", "found",
        "--token", server.info["founding_token"], "--log-key", server.info["log_key"],
        "--origin", server.info["origin"], "--title", "TLS talks", "--name", "The Mediator",
        "--quorum", "1", "--rule", "count", "--no-fresh-quorum", "--accept-single-witness",
        *extra,
    )  # fmt: skip


def refused_tls(result: Result, reason: str) -> None:
    assert result.code == 3, result.err
    assert result.data["error"]["code"] == "tls_verify_failed", result.data
    assert reason in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


@pytest.fixture(autouse=True)
def _env(passphrase: str) -> None:
    """Every test runs with DOCKET_PASSPHRASE set (and the fast KDF of conftest)."""


def test_private_ca_is_stored_in_the_home_and_used_for_every_connection(
    pki: Pki, serve: Serve, tmp_path: Path
) -> None:
    server = serve(pki.good)
    home = tmp_path / "med"
    ok(found(home, server, server.url, "--ca", str(pki.ca.cert)))
    assert (home / "server-ca.pem").read_bytes() == pki.ca.cert.read_bytes()
    # Later commands name neither --server nor --ca: both come from the home.
    assert ok(cli(home, "log"))["size"] >= 1
    assert ok(cli(home, "server", "show"))["ca"] == str(home / "server-ca.pem")


def test_server_certificate_for_another_host_name_is_refused(
    pki: Pki, serve: Serve, tmp_path: Path
) -> None:
    server = serve(pki.wrong_host)
    result = found(tmp_path / "med", server, server.url, "--ca", str(pki.ca.cert))
    refused_tls(result, "IP address mismatch")


def test_expired_server_certificate_is_refused(pki: Pki, serve: Serve, tmp_path: Path) -> None:
    server = serve(pki.expired)
    result = found(tmp_path / "med", server, server.url, "--ca", str(pki.ca.cert))
    refused_tls(result, "certificate has expired")


def test_certificate_from_an_untrusted_ca_is_refused(
    pki: Pki, serve: Serve, tmp_path: Path
) -> None:
    server = serve(pki.rogue)
    # With the private CA pinned, another CA's certificate is refused...
    refused_tls(
        found(tmp_path / "a", server, server.url, "--ca", str(pki.ca.cert)),
        "unable to get local issuer certificate",
    )
    # ...and without --ca the system trust store knows neither CA.
    refused_tls(found(tmp_path / "b", server, server.url), "unable to get local issuer")


def test_pinned_self_signed_certificate_is_accepted_and_a_substitute_refused(
    pki: Pki, serve: Serve, tmp_path: Path
) -> None:
    server = serve(pki.self_signed, "pinned")
    home = tmp_path / "med"
    ok(found(home, server, server.url, "--ca", str(pki.self_signed.cert)))
    assert ok(cli(home, "log"))["size"] >= 1
    # A man in the middle presenting another self-signed certificate for the same name.
    stop_process(server.proc)
    impostor = serve(pki.other_self_signed, "impostor")
    refused_tls(cli(home, "server", "set-url", impostor.url), "self-signed certificate")
    # Reading the log through it gets nothing from it: only what was verified before.
    result = cli(home, "--server", impostor.url, "log")
    assert "does not verify: self-signed certificate" in result.err
    assert result.data["size"] == 1


def test_cleartext_http_to_a_remote_host_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "med"
    for args in (
        ("--server", "http://talks.example.org:8470", "init"),
        ("--server", "http://192.0.2.7:8470", "talks", "found", "--token", "t", "--log-key",
         "k" * 43, "--origin", "o", "--title", "t", "--name", "n"),
    ):  # fmt: skip
        result = cli(home, *args)
        assert result.code == 2, result.err
        assert result.data["error"]["code"] == "insecure_url"
        assert "refusing cleartext http://" in result.err and "--insecure" in result.err
        assert len(result.err.strip().splitlines()) == 1
        assert not (home / "keystore.json").exists() and not home.exists()


def test_insecure_allows_cleartext_http_and_is_remembered_for_that_url(
    serve: Serve, tmp_path: Path
) -> None:
    server = serve(None)
    # 0.0.0.0 reaches this machine on Linux, yet is no loopback address: it stands in for
    # a remote host here without leaving the machine.
    url = server.url.replace("127.0.0.1", "0.0.0.0")  # noqa: S104
    home = tmp_path / "med"
    refused = found(home, server, url)
    assert refused.code == 2 and refused.data["error"]["code"] == "insecure_url"
    ok(found(home, server, url, "--insecure"))
    # The consent was given with a URL: later commands on the stored URL need no flag,
    # another URL does.
    assert ok(cli(home, "log"))["size"] >= 1
    other = cli(home, "--server", url.replace("0.0.0.0", "0.0.0.1"), "log")  # noqa: S104
    assert other.code == 2 and other.data["error"]["code"] == "insecure_url"


def test_set_url_refuses_a_server_with_other_talks(pki: Pki, serve: Serve, tmp_path: Path) -> None:
    first = serve(pki.good, "first")
    home = tmp_path / "med"
    ok(found(home, first, first.url, "--ca", str(pki.ca.cert)))
    # The same server under another name its certificate holds: accepted and stored.
    moved = first.url.replace("127.0.0.1", "localhost")
    assert ok(cli(home, "server", "set-url", moved))["checked"] is True
    assert ok(cli(home, "server", "show"))["server"] == moved
    assert ok(cli(home, "log"))["size"] >= 1
    # Another server with talks of its own: refused, the stored URL unchanged.
    second = serve(pki.good, "second")
    ok(found(tmp_path / "other", second, second.url, "--ca", str(pki.ca.cert)))
    result = cli(home, "server", "set-url", second.url)
    assert result.code == 1 and result.data["error"]["code"] == "talks_mismatch", result.err
    assert ok(cli(home, "server", "show"))["server"] == moved
    # A new URL whose certificate the stored CA does not vouch for is refused too.
    rogue = serve(pki.rogue, "rogue")
    refused_tls(cli(home, "server", "set-url", rogue.url), "unable to get local issuer")
