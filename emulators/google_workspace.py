"""Google Workspace in the emulator: domains, service accounts and domain-wide delegation.

A Workspace customer owns one or more domains; its super admin authorizes a service
account's **Client ID** for a comma-separated list of OAuth scopes in Admin console →
Security → Access and data control → API controls → Domain-wide delegation
(https://support.google.com/a/answer/162106). The service account then signs a JWT with
its private key, names a domain user in ``sub`` and gets a token acting as that user
(https://developers.google.com/identity/protocols/oauth2/service-account).

Service accounts carry real RSA keys (``cryptography``); ``ServiceAccount.key_json``
returns the key file exactly as the Cloud console downloads it. Tests and ``tandem demo``
create accounts and toggle delegation here, as an admin would in the console.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# The real service's addresses, written into downloaded key files as Google does; Tandem
# must not use the file's ``token_uri`` (it reads the token URL from its settings).
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
GOOGLE_CERTS_URI = "https://www.googleapis.com/oauth2/v1/certs"
ROBOT_CERTS_PREFIX = "https://www.googleapis.com/robot/v1/metadata/x509/"


@dataclass
class ServiceAccountKey:
    key_id: str  # 40 hex digits, the file's ``private_key_id`` and the JWT header's ``kid``
    private_pem: str
    public_key: rsa.RSAPublicKey


@dataclass
class ServiceAccount:
    """A Cloud project's service account: an email, a numeric client id, its keys."""

    client_email: str
    client_id: str  # the "Unique ID" (21 digits) admins paste into Admin console
    project_id: str
    keys: dict[str, ServiceAccountKey] = field(default_factory=dict)
    disabled: bool = False

    def new_key(self) -> ServiceAccountKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        key = ServiceAccountKey(secrets.token_hex(20), pem, private.public_key())
        self.keys[key.key_id] = key
        return key

    def key_json(self, key_id: str | None = None) -> dict[str, Any]:
        """The JSON key file of ``key_id`` (the newest key when None), field for field as
        the console's "Keys → Add key → Create new key → JSON" download
        (https://cloud.google.com/iam/docs/keys-create-delete)."""
        key = self.keys[key_id] if key_id else list(self.keys.values())[-1]
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": key.key_id,
            "private_key": key.private_pem,
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": GOOGLE_AUTH_URI,
            "token_uri": GOOGLE_TOKEN_URI,
            "auth_provider_x509_cert_url": GOOGLE_CERTS_URI,
            "client_x509_cert_url": ROBOT_CERTS_PREFIX + quote(self.client_email, safe=""),
            "universe_domain": "googleapis.com",
        }


@dataclass
class Workspace:
    """One Workspace customer: its domains and the delegations its admin authorized
    (client id -> the scopes entered for it)."""

    domains: set[str]
    delegations: dict[str, set[str]] = field(default_factory=dict)


class WorkspaceDirectory:
    """Service accounts and Workspace customers; guarded by the emulator state's lock."""

    def __init__(self) -> None:
        self.service_accounts: dict[str, ServiceAccount] = {}  # by client_email
        self.workspaces: list[Workspace] = []
        # Calendars whose free/busy the requester may not see, with the per-calendar
        # reason freeBusy answers for them (see ``deny_free_busy``).
        self.denied_free_busy: dict[str, str] = {}

    def create_service_account(
        self, name: str = "tandem-calendar", project_id: str = "tandem-org-1234"
    ) -> ServiceAccount:
        email = f"{name}@{project_id}.iam.gserviceaccount.com"
        account = ServiceAccount(email, "1" + str(secrets.randbelow(10**20)).zfill(20), project_id)
        account.new_key()
        self.service_accounts[email] = account
        return account

    def add_workspace(self, domain: str, *more_domains: str) -> Workspace:
        workspace = Workspace({d.lower() for d in (domain, *more_domains)})
        self.workspaces.append(workspace)
        return workspace

    def workspace_of(self, email: str) -> Workspace | None:
        domain = email.rpartition("@")[2].lower()
        return next((w for w in self.workspaces if domain in w.domains), None)

    def by_client_id(self, client_id: str) -> ServiceAccount | None:
        return next((a for a in self.service_accounts.values() if a.client_id == client_id), None)
