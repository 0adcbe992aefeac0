"""Who may do what over HTTP: identities, permissions and the authorization hook.

The approver of a gate is always the identity the hook returns for the request, never a
name taken from the request body.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class Permission(enum.StrEnum):
    """What a request wants to do."""

    READ = "read"  # runs, steps, events, the inbox
    START = "start"  # start a run
    DECIDE = "decide"  # approve, reject or give feedback on a gate
    CANCEL = "cancel"  # cancel a run


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller. ``name`` is recorded as the approver of its decisions."""

    name: str
    roles: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Target:
    """What a request acts on; fields the request does not concern are ``None``."""

    workflow_name: str | None = None
    run_id: str | None = None
    gate_name: str | None = None
    gate_type: str | None = None


@runtime_checkable
class Authorizer(Protocol):
    """The authorization hook of the web integrations.

    ``authenticate`` turns a request's headers (lower-case names; cookies included as the
    ``cookie`` header) into an :class:`Identity`, or ``None`` when the request carries no
    valid credentials (answered 401). ``authorize`` decides whether that identity may do
    ``permission`` on ``target`` (``False`` is answered 403).
    """

    async def authenticate(self, headers: Mapping[str, str]) -> Identity | None:
        """The caller, or ``None`` if the request is not authenticated."""
        ...

    async def authorize(self, identity: Identity, permission: Permission, target: Target) -> bool:
        """Whether ``identity`` may do ``permission`` on ``target``."""
        ...


Rule = Callable[[Identity, Permission, Target], bool]


def allow_all(identity: Identity, permission: Permission, target: Target) -> bool:
    """The default rule: every authenticated identity may do everything."""
    return True


class TokenAuthorizer:
    """Bearer tokens mapped to identities, plus an optional rule for permissions.

    Accepts ``Authorization: Bearer <token>`` (API clients) and, for browsers, the
    ``runkon_token`` cookie set by the web inbox's sign-in. Tokens are compared in
    constant time.

    Example::

        auth = TokenAuthorizer(
            {"t0k-alice": "alice", "t0k-bob": Identity("bob", frozenset({"viewer"}))},
            rule=lambda who, perm, target: perm is Permission.READ or "viewer" not in who.roles,
        )
    """

    cookie_name = "runkon_token"

    def __init__(self, tokens: Mapping[str, str | Identity], *, rule: Rule = allow_all) -> None:
        if not tokens:
            raise ValueError("TokenAuthorizer needs at least one token")
        self._tokens = {
            token: who if isinstance(who, Identity) else Identity(who)
            for token, who in tokens.items()
        }
        self._rule = rule

    def identify(self, token: str) -> Identity | None:
        """The identity of ``token``, or ``None``."""
        try:
            presented = token.encode()
        except UnicodeEncodeError:  # undecodable header bytes (aiohttp keeps them escaped)
            return None
        found: Identity | None = None
        for known, who in self._tokens.items():
            if hmac.compare_digest(known.encode(), presented):
                found = who
        return found

    async def authenticate(self, headers: Mapping[str, str]) -> Identity | None:
        """The identity of the request's bearer token or ``runkon_token`` cookie."""
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self.identify(token.strip())
        cookie = cookie_value(headers.get("cookie", ""), self.cookie_name)
        return self.identify(cookie) if cookie else None

    async def authorize(self, identity: Identity, permission: Permission, target: Target) -> bool:
        """What the ``rule`` given at construction says (everything by default)."""
        return self._rule(identity, permission, target)


def cookie_value(cookie_header: str, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, or ``None``."""
    for part in cookie_header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None
