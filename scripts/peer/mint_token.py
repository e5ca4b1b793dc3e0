#!/usr/bin/env python3
"""Mint an app-only Entra ID token whose client assertion is signed by a Key Vault certificate, the way a
developer would without KeyVault Proxy: MSAL for the token request, the Azure SDK for Key Vault.

It is the peer the `peer` bench measures kvproxy against, so it is written plainly and does each step the
usual way: read the certificate once (its SHA-1 thumbprint is the assertion's x5t, its key id names the key
to sign with), then per token build the assertion, have Key Vault sign its SHA-256 digest with RS256 and
send it to Entra.

    python mint_token.py --authority-host https://login.microsoftonline.com --tenant T --client-id C \\
        --vault-url https://myvault.vault.azure.net/ --certificate my-cert --scope api://my-api/.default

prints the access token alone. With --count N it mints N tokens in one process, each with a fresh assertion,
sign and token request (MSAL's token cache is emptied before each), and prints the timings as JSON instead.

Key Vault credential: DefaultAzureCredential (az login, environment, managed identity, ...) unless
--kv-client-id is given, then a client secret (--kv-client-secret or AZURE_CLIENT_SECRET) for that app in
--kv-tenant (default: --tenant). The local emulator (`kvproxy demo`) is signed in to that way: its developer
app and secret stand in for `az login`. For the emulator also set REQUESTS_CA_BUNDLE to its CA certificate.
"""

import argparse
import base64
import hashlib
import importlib.metadata
import json
import os
import socket
import sys
import time
import urllib.parse
import uuid

STARTED = time.perf_counter()

# Imported here, not lazily, so the import cost is part of every run as it is for any script using them.
import msal  # noqa: E402
from azure.identity import ClientSecretCredential, DefaultAzureCredential  # noqa: E402
from azure.keyvault.certificates import CertificateClient  # noqa: E402
from azure.keyvault.keys import KeyVaultKey  # noqa: E402
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm  # noqa: E402
from cryptography import x509  # noqa: E402

IMPORTED = time.perf_counter()

PACKAGES = ("msal", "azure-identity", "azure-keyvault-certificates", "azure-keyvault-keys", "azure-core", "requests")
ASSERTION_LIFETIME_SECS = 300


def resolve_localhost_names():
    """*.localhost is this machine by definition (RFC 6761), but not every system resolver says so (glibc
    without nss-myhostname does not), and the emulator's hosts (login.localhost, NAME.vault.localhost) are
    such names. requests (under MSAL and the Azure SDK) resolves through socket.getaddrinfo, so that is
    where they are mapped."""
    system_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name.lower().rstrip(".").endswith(".localhost"):
            host = "127.0.0.1"
        return system_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def uint_bytes(number):
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authority-host", default="https://login.microsoftonline.com",
                        help="Entra ID host, e.g. https://login.microsoftonline.com")
    parser.add_argument("--tenant", required=True, help="tenant id of the app")
    parser.add_argument("--client-id", required=True, help="client id of the app the token is for")
    parser.add_argument("--vault-url", required=True, help="e.g. https://myvault.vault.azure.net/")
    parser.add_argument("--certificate", required=True, help="certificate name in the vault")
    parser.add_argument("--scope", required=True, help="e.g. api://my-api/.default")
    parser.add_argument("--kv-client-id",
                        help="sign in to Key Vault with this app's client secret instead of DefaultAzureCredential")
    parser.add_argument("--kv-client-secret", default=os.environ.get("AZURE_CLIENT_SECRET"),
                        help="its secret (default: AZURE_CLIENT_SECRET)")
    parser.add_argument("--kv-tenant", help="its tenant (default: --tenant)")
    parser.add_argument("--count", type=int,
                        help="mint this many tokens in one process and print the timings as JSON")
    args = parser.parse_args(argv)
    if args.count is not None and args.count < 1:
        parser.error("--count must be at least 1")
    if args.kv_client_id and not args.kv_client_secret:
        parser.error("--kv-client-id needs --kv-client-secret (or AZURE_CLIENT_SECRET)")
    return args


def key_vault_credential(args):
    authority = args.authority_host
    if args.kv_client_id:
        # Instance discovery asks login.microsoftonline.com about the authority; a sovereign or emulated
        # cloud is not on its list, so it is off for any host but the public cloud's.
        return ClientSecretCredential(
            args.kv_tenant or args.tenant, args.kv_client_id, args.kv_client_secret,
            authority=authority,
            disable_instance_discovery=not authority.endswith("login.microsoftonline.com"),
        )
    return DefaultAzureCredential(authority=authority)


def challenge_options(vault_url):
    """The SDK checks that the vault's host ends with the resource named in Key Vault's 401 challenge, but
    it compares host:port, so a vault on a port of its own (the emulator) never passes. Real vaults are on
    443, where the check stays on."""
    return {"verify_challenge_resource": urllib.parse.urlsplit(vault_url).port in (None, 443)}


def signing_client(certificate, credential, vault_url):
    """A CryptographyClient for the certificate's key. Given only the key id, the client first GETs the key
    to see whether it can sign locally (it never can: the private key stays in the vault); handing it the
    public key from the certificate already read skips that call."""
    public = x509.load_der_x509_certificate(bytes(certificate.cer)).public_key().public_numbers()
    key = KeyVaultKey(key_id=certificate.key_id,
                      jwk={"kid": certificate.key_id, "kty": "RSA", "key_ops": ["sign", "verify"],
                           "n": uint_bytes(public.n), "e": uint_bytes(public.e)})
    return CryptographyClient(key, credential, **challenge_options(vault_url))


def main(argv):
    args = parse_args(argv)
    resolve_localhost_names()
    authority_host = args.authority_host.rstrip("/")
    credential = key_vault_credential(args)

    certificates = CertificateClient(args.vault_url, credential, **challenge_options(args.vault_url))
    certificate = certificates.get_certificate(args.certificate)
    x5t = b64url(bytes(certificate.properties.x509_thumbprint))
    signer = signing_client(certificate, credential, args.vault_url)
    signs = 0

    def client_assertion(context):
        nonlocal signs
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5t": x5t}
        claims = {
            "aud": context["token_endpoint"],
            "iss": args.client_id,
            "sub": args.client_id,
            "jti": str(uuid.uuid4()),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        }
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims))
        digest = hashlib.sha256(signing_input.encode("ascii")).digest()
        signature = signer.sign(SignatureAlgorithm.rs256, digest).signature
        signs += 1
        return f"{signing_input}.{b64url(signature)}"

    public_cloud = authority_host.endswith("login.microsoftonline.com")
    app = msal.ConfidentialClientApplication(
        args.client_id,
        client_credential={"client_assertion": client_assertion},
        authority=f"{authority_host}/{args.tenant}",
        # Both only know Microsoft's own clouds; for any other host they would refuse the authority.
        validate_authority=public_cloud,
        instance_discovery=public_cloud,
    )
    ready = time.perf_counter()

    times_ms = []
    result = {}
    for _ in range(args.count or 1):
        started = time.perf_counter()
        # A cached token would skip the work being measured.
        app.remove_tokens_for_client()
        result = app.acquire_token_for_client([args.scope])
        times_ms.append((time.perf_counter() - started) * 1e3)
        if "access_token" not in result:
            print(f"mint_token.py: no token: {result.get('error')}: {result.get('error_description')}",
                  file=sys.stderr)
            return 1

    if args.count is None:
        print(result["access_token"])
        return 0
    print(json.dumps({
        "count": args.count,
        "signs": signs,
        "token_ms": [round(t, 3) for t in times_ms],
        "import_ms": round((IMPORTED - STARTED) * 1e3, 3),
        "setup_ms": round((ready - IMPORTED) * 1e3, 3),
        "python": sys.version.split()[0],
        "versions": {name: importlib.metadata.version(name) for name in PACKAGES},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
