"""`sq user add|list|code|disable|reset-totp`: on the broker's users bucket with --nats-url (or $SQ_NATS_URL),
else on the data dir's sealed file (which the gateway moves into the bucket when it first starts on a broker)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from events.bus import DEFAULT_URL_ENV, Bus
from gateway.sessions import SharedSessions
from gateway.tokens import ACCESS_TOKEN_TTL_S, Revocation
from gateway.user_bucket import SharedUsers
from gateway.users import ROLES, Enrolment, User, UserError, UserStore
from store.secrets import SecretError, load_master_key

LOCAL_ONLY = ("(local store only: a gateway on a broker reads the users bucket; pass --nats-url to change it "
              "there)")


def _url(args: argparse.Namespace) -> str | None:
    return args.nats_url or os.environ.get(DEFAULT_URL_ENV) or None


def _secrets(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) / "secrets"


def _run(args: argparse.Namespace, command: str, action: Callable[[SharedUsers, Bus], Awaitable[int]]) -> int:
    """Run `action` on the users bucket of the broker at --nats-url; errors printed, exit 2."""

    async def main() -> int:
        # The bucket's values must open on every gateway: never make up a new master key here.
        master = load_master_key(_secrets(args), create=False)
        bus = await Bus.connect(_url(args), name="sq-user")
        try:
            return await action(await SharedUsers.open(bus, master), bus)
        finally:
            await bus.close()

    try:
        return asyncio.run(main())
    except (UserError, SecretError, ValueError, OSError) as exc:
        print(f"sq user {command}: {exc}", file=sys.stderr)
        return 2


def _print_enrolment(enrolment: Enrolment, verb: str) -> None:
    user = enrolment.user
    print(f"user {user.name} {verb} with roles {', '.join(user.roles)} on accounts {', '.join(user.accounts) or '-'}")
    print("Scan or paste this into an authenticator app now; it is not shown again:")
    print(enrolment.provisioning_uri)


def _cmd_add(args: argparse.Namespace) -> int:
    """Enrol a user and print their TOTP provisioning URI once."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        import getpass

        password = getpass.getpass(f"password for {args.name}: ")
    if _url(args):
        async def add(users: SharedUsers, _bus: Bus) -> int:
            _print_enrolment(await users.add(args.name, password, args.role, args.account), "added")
            return 0

        return _run(args, "add", add)
    try:
        enrolment = UserStore(_secrets(args)).add(args.name, password, args.role, args.account)
    except (UserError, SecretError, ValueError) as exc:
        print(f"sq user add: {exc}", file=sys.stderr)
        return 2
    _print_enrolment(enrolment, "added")
    return 0


def _print_user(user: User, disabled: bool) -> None:
    print(f"{user.name}\troles={','.join(user.roles)}\taccounts={','.join(user.accounts) or '-'}"
          + ("\tdisabled" if disabled else ""))


def _cmd_list(args: argparse.Namespace) -> int:
    """List users with their roles and accounts (no secrets)."""
    if _url(args):
        async def listing(users: SharedUsers, _bus: Bus) -> int:
            for name in await users.names():
                user = await users.get(name)
                if user is not None:
                    _print_user(user, await users.is_disabled(name))
            return 0

        return _run(args, "list", listing)
    store = UserStore(_secrets(args))
    for name in store.names():
        user = store.get(name)
        assert user is not None
        _print_user(user, store.is_disabled(name))
    return 0


def _cmd_code(args: argparse.Namespace) -> int:
    """Print a user's current TOTP code (scripts and the demo; needs the master key)."""
    if _url(args):
        async def code(users: SharedUsers, _bus: Bus) -> int:
            print(await users.totp_now(args.name))
            return 0

        return _run(args, "code", code)
    store = UserStore(_secrets(args))
    if store.get(args.name) is None:
        print(f"sq user code: no user {args.name!r}", file=sys.stderr)
        return 2
    print(store.totp_now(args.name))
    return 0


def _cmd_disable(args: argparse.Namespace) -> int:
    """Disable a user: logins refused and (on a broker) every token they hold revoked on every gateway."""
    if _url(args):
        async def disable(users: SharedUsers, bus: Bus) -> int:
            await users.disable(args.name)
            sessions = await SharedSessions.open(bus, None, token_ttl_s=ACCESS_TOKEN_TTL_S)
            now = time.time()
            await sessions.revoke(Revocation(user=args.name, before=now), now + ACCESS_TOKEN_TTL_S)
            print(f"user {args.name} disabled; their tokens are revoked on every gateway")
            return 0

        return _run(args, "disable", disable)
    try:
        UserStore(_secrets(args)).disable(args.name)
    except (UserError, SecretError) as exc:
        print(f"sq user disable: {exc}", file=sys.stderr)
        return 2
    print(f"user {args.name} disabled {LOCAL_ONLY}")
    return 0


def _cmd_reset_totp(args: argparse.Namespace) -> int:
    """Give a user a new TOTP seed and print its provisioning URI once."""
    if _url(args):
        async def reset(users: SharedUsers, _bus: Bus) -> int:
            _print_enrolment(await users.reset_totp(args.name), "has a new TOTP seed")
            return 0

        return _run(args, "reset-totp", reset)
    try:
        enrolment = UserStore(_secrets(args)).reset_totp(args.name)
    except (UserError, SecretError) as exc:
        print(f"sq user reset-totp: {exc}", file=sys.stderr)
        return 2
    _print_enrolment(enrolment, "has a new TOTP seed")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default="var", help="the stack's data directory: its master key, and the "
                                                          "local store without a broker (default ./var)")
    parser.add_argument("--nats-url", default=None,
                        help=f"use the broker's users bucket (default ${DEFAULT_URL_ENV}; neither: the local store)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `sq user` and its actions."""
    user = sub.add_parser("user", help="manage gateway users (on the broker's bucket, or the local store)")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_sub.add_parser("add", help="add a user and print the TOTP provisioning URI once")
    add.add_argument("name")
    add.add_argument("--role", action="append", required=True, choices=list(ROLES), help="role (repeat for several)")
    add.add_argument("--account", action="append", default=[], help="account the user may see and trade (repeat)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first stdin line")
    _common(add)
    add.set_defaults(func=_cmd_add)
    for name, func, summary in (
            ("code", _cmd_code, "print a user's current TOTP code (scripts, the demo)"),
            ("disable", _cmd_disable, "refuse a user's logins and revoke their tokens on every gateway"),
            ("reset-totp", _cmd_reset_totp, "give a user a new TOTP seed and print its provisioning URI once")):
        action = user_sub.add_parser(name, help=summary)
        action.add_argument("name")
        _common(action)
        action.set_defaults(func=func)
    listing = user_sub.add_parser("list", help="list users, roles, accounts and who is disabled")
    _common(listing)
    listing.set_defaults(func=_cmd_list)
