"""Schemathesis hooks for scripts/schema-check (loaded through SCHEMATHESIS_HOOKS).

Gives every operation an access token of a role it takes, read from the operation's own
`security` requirement (scheme `bearer`, whose scopes name the roles: `customer`, `mitra`,
`cc`, `admin`: the seeded admin for both of the last), so one run per listener covers every route with a token it accepts:

- one role in the scopes: a token of that role;
- `customer` and `mitra` (the shared routes): one of the two, chosen by a hash of the
  generated request, so both roles are exercised and a given request always gets the same one
  (shrinking and replays stay deterministic);
- no requirement: nothing is added.

Tokens: the seeded load-test accounts' tokens (`SCHEMA_CHECK_TOKENS`, from `bestie seed
--tokens`) and an operator token from `POST /internal/auth/login`. When a token stops working
(a 401: a fuzzed deactivation or password reset of the mitra, say), schemathesis drops it
and asks again; the mitra role then signs in as the next account that still can, the customer
role signs in with a one-time code for a fresh phone number.

The logout routes and the password change revoke the token they are called with, so each of their requests gets a
token of its own, from a fresh sign-in, and the shared tokens are never revoked.

schemathesis' own `ignored_auth` check then removes or spoils these tokens to see the
server refuse. The `wrong_role_rejected` check below adds what it cannot know: for each
authenticated operation, once per run, the same request with a valid token of a role the
operation does not take (a mitra on a customer route, a cc token on the public listener,
an app token on the internal one) must get 401 or 403.

Environment (set by scripts/schema-check): SCHEMA_CHECK_PUBLIC, SCHEMA_CHECK_INTERNAL (base
URLs), SCHEMA_CHECK_TOKENS, SCHEMA_CHECK_ADMIN_EMAIL, SCHEMA_CHECK_ADMIN_PASSWORD,
SCHEMA_CHECK_MITRA_EMAILS (space-separated), SCHEMA_CHECK_MITRA_PASSWORD.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading

import requests
import schemathesis

PUBLIC = os.environ["SCHEMA_CHECK_PUBLIC"].rstrip("/")
INTERNAL = os.environ["SCHEMA_CHECK_INTERNAL"].rstrip("/")
ADMIN_EMAIL = os.environ["SCHEMA_CHECK_ADMIN_EMAIL"]
ADMIN_PASSWORD = os.environ["SCHEMA_CHECK_ADMIN_PASSWORD"]
MITRA_EMAILS = os.environ["SCHEMA_CHECK_MITRA_EMAILS"].split()
MITRA_PASSWORD = os.environ["SCHEMA_CHECK_MITRA_PASSWORD"]
with open(os.environ["SCHEMA_CHECK_TOKENS"]) as f:
    SEEDED = json.load(f)

LOGOUT_OPERATIONS = ["app_logout", "operator_logout", "operator_change_password"]
TIMEOUT = 10
_lock = threading.Lock()
# Seeded tokens not handed out yet, by role; once used up, a role signs in afresh.
_seeded = {
    "customer": [account["token"] for account in SEEDED["customers"]],
    "mitra": [account["token"] for account in SEEDED["mitras"]],
}


def roles_of(operation) -> list[str]:
    """The roles the operation's `bearer` requirements name, in document order."""
    roles: list[str] = []
    for requirement in operation.definition.raw.get("security") or []:
        for scope in requirement.get("bearer", []):
            if scope not in roles:
                roles.append(scope)
    return roles


def role_for(case, operation) -> str | None:
    roles = roles_of(operation)
    if not roles:
        return None
    if len(roles) == 1:
        return roles[0]
    key = repr((case.path_parameters, case.query, case.body)).encode()
    return roles[hashlib.sha256(key).digest()[0] % len(roles)]


def _session_token(response: requests.Response, what: str) -> str:
    if response.status_code != 200:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:300]}")
    return response.json()["access_token"]


def sign_in_customer() -> str:
    phone = "+62899" + "".join(random.choice("0123456789") for _ in range(9))
    otp = requests.post(f"{PUBLIC}/api/auth/customer/otp", json={"phone": phone}, timeout=TIMEOUT)
    if otp.status_code != 202 or "dev_code" not in otp.json():
        raise RuntimeError(f"customer otp: {otp.status_code} {otp.text[:300]}")
    verify = requests.post(
        f"{PUBLIC}/api/auth/customer/verify",
        json={"phone": phone, "code": otp.json()["dev_code"]},
        timeout=TIMEOUT,
    )
    return _session_token(verify, "customer verify")


def sign_in_mitra() -> str:
    failures = []
    for email in MITRA_EMAILS:
        response = requests.post(
            f"{PUBLIC}/api/auth/mitra/login",
            json={"email": email, "password": MITRA_PASSWORD},
            timeout=TIMEOUT,
        )
        if response.status_code == 200:
            return response.json()["access_token"]
        failures.append(f"{email}: {response.status_code} {response.text[:120]}")
    raise RuntimeError("no mitra could sign in: " + "; ".join(failures))


def sign_in_operator() -> str:
    response = requests.post(
        f"{INTERNAL}/internal/auth/login",
        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        timeout=TIMEOUT,
    )
    return _session_token(response, "operator login")


# `admin` routes take the seeded admin too (an `operator`-role account gets 403 admin_required).
SIGN_IN = {"customer": sign_in_customer, "mitra": sign_in_mitra, "cc": sign_in_operator, "admin": sign_in_operator}


def fresh_token(role: str) -> str:
    return SIGN_IN[role]()


def token_for(role: str) -> str:
    """A token for the long-lived cache: a seeded one while any is left, then a fresh sign-in."""
    with _lock:
        seeded = _seeded.get(role) or []
        if seeded:
            return seeded.pop(0)
    return fresh_token(role)


def _bearer(case, token: str) -> None:
    case.headers = case.headers or {}
    case.headers["Authorization"] = f"Bearer {token}"


def _cache_key(case, context) -> str:
    return role_for(case, context.operation) or "none"


# Registered first, so it wins for the logout routes: no cache, a fresh sign-in per request.
@schemathesis.auth(refresh_interval=None).apply_to(operation_id=LOGOUT_OPERATIONS)
class FreshSessionAuth:
    def get(self, case, context):
        role = role_for(case, context.operation)
        return fresh_token(role) if role else None

    def set(self, case, data, context):
        _bearer(case, data)


# Every other authenticated route: one token per role, refetched after a 401.
@schemathesis.auth(refresh_interval=24 * 3600, cache_by_key=_cache_key).skip_for(operation_id=LOGOUT_OPERATIONS)
class RoleAuth:
    def get(self, case, context):
        role = role_for(case, context.operation)
        return token_for(role) if role else None

    def set(self, case, data, context):
        _bearer(case, data)


# --- wrong role ----------------------------------------------------------------------------

_wrong_role_probed: set[str] = set()
_wrong_tokens: dict[str, str] = {}


def _wrong_role(operation) -> str | None:
    roles = roles_of(operation)
    if not roles:
        return None
    if operation.path.startswith("/internal/") or "cc" in roles or "admin" in roles:
        return "customer"
    if "customer" in roles and "mitra" in roles:
        return "cc"
    return "mitra" if "customer" in roles else "customer"


@schemathesis.check
def wrong_role_rejected(ctx, response, case):
    """An authenticated operation refuses a valid token of a role it does not take (401/403)."""
    operation = case.operation
    wrong = _wrong_role(operation)
    # Only worth asking when the right role got through with the documented method: otherwise
    # the request itself was refused (or was a CORS preflight, an undocumented method ...).
    if wrong is None or case.method.upper() != operation.method.upper():
        return None
    if not 200 <= response.status_code < 300:
        return None
    with _lock:
        if operation.label in _wrong_role_probed:
            return None
        _wrong_role_probed.add(operation.label)
    with _lock:
        token = _wrong_tokens.get(wrong)
    if token is None:
        token = fresh_token(wrong)
        with _lock:
            _wrong_tokens[wrong] = token
    probe = case.derive()
    _bearer(probe, token)
    answer = probe.call()
    if answer.status_code not in (401, 403):
        raise AssertionError(
            f"{operation.label} takes {roles_of(operation)}, but a `{wrong}` token got "
            f"{answer.status_code}: {answer.text[:200]}"
        )
    return None
