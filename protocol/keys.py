"""Device identities: an Ed25519 signing key and an X25519 encryption key per device.

A device is named by its **device id**, 16 bytes of SHA-256 over a context and both public
keys, so one id commits to both keys: substituting either key changes the id.  People
compare a **fingerprint** aloud: 30 decimal digits in six groups of five, derived from
the same two keys (the talks fingerprint uses the same digit form over the genesis hash).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NewType

from protocol import crypto
from protocol.encoding import Fields, JSONValue, b64e
from protocol.errors import MalformedError

DeviceId = NewType("DeviceId", bytes)
DEVICE_ID_LEN = 16


def readable_digits(digest: bytes, groups: int = 6) -> str:
    """Render a digest as groups of five decimal digits, e.g. ``"04213 88710 ..."``."""
    if len(digest) < 5 * groups:
        digest = crypto.sha256(digest) + crypto.sha256(crypto.sha256(digest))
    out = []
    for i in range(groups):
        chunk = int.from_bytes(digest[5 * i : 5 * i + 5], "big") % 100000
        out.append(f"{chunk:05d}")
    return " ".join(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class DevicePublic:
    """The public half of a device: what the roster records and others verify against."""

    sign_pk: bytes
    enc_pk: bytes
    device_id: DeviceId = field(init=False, repr=False, compare=False)
    """Commits to both keys; computed once (every draft and receipt check reads it)."""

    def __post_init__(self) -> None:
        crypto.check_signing_key(self.sign_pk)
        crypto.check_box_key(self.enc_pk)
        digest = crypto.sha256(crypto.CTX_KEY_ID, self.sign_pk, self.enc_pk)
        object.__setattr__(self, "device_id", DeviceId(digest[:DEVICE_ID_LEN]))

    @property
    def fingerprint(self) -> str:
        return readable_digits(crypto.sha256(crypto.CTX_FINGERPRINT, self.sign_pk, self.enc_pk))

    def to_json(self) -> dict[str, JSONValue]:
        return {"enc": b64e(self.enc_pk), "sign": b64e(self.sign_pk)}

    @classmethod
    def from_json(cls, value: JSONValue, what: str = "device") -> DevicePublic:
        f = Fields(value, what)
        sign_pk = f.bytes("sign", length=crypto.PUBLIC_KEY_LEN)
        enc_pk = f.bytes("enc", length=crypto.PUBLIC_KEY_LEN)
        f.done()
        return cls(sign_pk=sign_pk, enc_pk=enc_pk)


class DeviceKeys:
    """A device's private keys.  Lives only in the client's encrypted key store."""

    __slots__ = ("box", "public", "signing")

    def __init__(self, signing: crypto.SigningKey, box: crypto.BoxKey) -> None:
        self.signing = signing
        self.box = box
        self.public = DevicePublic(sign_pk=signing.public_bytes(), enc_pk=box.public_bytes())

    @classmethod
    def generate(cls, rng: crypto.Rng) -> DeviceKeys:
        return cls(crypto.SigningKey.generate(rng), crypto.BoxKey.generate(rng))

    @classmethod
    def from_private_bytes(cls, data: bytes) -> DeviceKeys:
        """Rebuild from :meth:`private_bytes` (64 bytes: Ed25519 seed || X25519 secret)."""
        if len(data) != 64:
            raise MalformedError("device private key material must be 64 bytes")
        return cls(crypto.SigningKey(data[:32]), crypto.BoxKey(data[32:]))

    def private_bytes(self) -> bytes:
        return self.signing.seed_bytes() + self.box.secret_bytes()

    @property
    def device_id(self) -> DeviceId:
        return self.public.device_id

    def __repr__(self) -> str:
        return f"DeviceKeys({b64e(self.device_id)})"
