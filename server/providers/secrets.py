"""Encryption of secrets at rest (tokens, app passwords, OAuth flow state).

MultiFernet with the newest key first: new ciphertext always uses the newest key, older
keys still decrypt, and ``rotate`` re-encrypts under the newest. Fernet has no associated
data, so each plaintext embeds a *binding* (for example ``calendar:<user id>``) checked on
decryption: a ciphertext copied into another user's row refuses to decrypt there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretError(Exception):
    """A ciphertext could not be decrypted with the configured keys, or was bound elsewhere."""


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretError("no encryption key configured")
        self._primary = keys[0].encode()
        self._older = tuple(key.encode() for key in keys[1:])
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except (ValueError, TypeError) as exc:
            raise SecretError("an encryption key is not a valid Fernet key") from exc

    @classmethod
    def from_config(cls, secret_keys: str | None, data_dir: Path) -> SecretBox:
        """Keys from ``TANDEM_SECRET_KEYS``; else a key file generated once in the data folder."""
        if secret_keys:
            return cls([key.strip() for key in secret_keys.split(",") if key.strip()])
        key_file = data_dir / "secret.key"
        if not key_file.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(Fernet.generate_key().decode())
        return cls([key_file.read_text().strip()])

    def master_key(self) -> bytes:
        """The newest key's bytes, for deriving purpose-bound signing keys (HKDF)."""
        return self._primary

    def older_keys(self) -> tuple[bytes, ...]:
        """Keys kept for decryption during a rotation, newest first."""
        return self._older

    def encrypt(self, value: Any, *, binding: str) -> bytes:
        plaintext = json.dumps({"b": binding, "v": value}, separators=(",", ":"))
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes, *, binding: str) -> Any:
        try:
            payload = json.loads(self._fernet.decrypt(token))
        except (InvalidToken, ValueError) as exc:
            raise SecretError("secret cannot be decrypted with the configured keys") from exc
        if not isinstance(payload, dict) or payload.get("b") != binding:
            raise SecretError("secret belongs to another record")
        return payload["v"]

    def rotate(self, token: bytes) -> bytes:
        try:
            return self._fernet.rotate(token)
        except InvalidToken as exc:
            raise SecretError("secret cannot be decrypted with the configured keys") from exc
