"""`medark key list|add|remove|passwd`: manage the passwords that open the repository.

New passwords come from --new-password-file, $MEDARK_NEW_PASSWORD or a terminal prompt
(asked twice), never from the command line itself.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from medark.cli.command import Command
from medark.cli.context import Context
from medark.config import environment as env
from medark.errors import UsageError

if TYPE_CHECKING:
    from medark.service.keys import KeyEntry

ACTIONS = ("list", "add", "remove", "passwd")
LOCKS = {"list": "shared", "add": "shared", "remove": "exclusive", "passwd": "exclusive"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS, help="list, add, remove ID, or passwd")
    p.add_argument("id", nargs="?", metavar="ID", help="key id (or unique prefix) for remove")
    p.add_argument("--new-password-file", metavar="FILE",
                   help="read the new password from the first line of FILE "
                        "(default: $MEDARK_NEW_PASSWORD_FILE, $MEDARK_NEW_PASSWORD, else a prompt)")


def read_new_password(args: argparse.Namespace) -> bytes:
    path = args.new_password_file or env.NEW_PASSWORD_FILE.get()
    if path:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read new password file {path}: {exc.strerror}") from None
        password = data.split(b"\n", 1)[0].rstrip(b"\r")
    elif os.environ.get(env.NEW_PASSWORD.name) is not None:
        password = os.environ[env.NEW_PASSWORD.name].encode()
    elif sys.stdin.isatty():
        password = getpass.getpass("enter new password: ").encode()
        if getpass.getpass("enter new password again: ").encode() != password:
            raise UsageError("the passwords do not match")
    else:
        raise UsageError("no new password given: use --new-password-file or set "
                         "MEDARK_NEW_PASSWORD")
    if not password:
        raise UsageError("the new password is empty")
    return password


def run(ctx: Context) -> int:
    from medark.service.keys import (
        add_key,
        change_password,
        list_keys,
        remove_key,
        unindexed_repository,
    )

    action = ctx.args.action
    if action == "remove" and not ctx.args.id:
        raise UsageError("key remove needs the id of the key to remove (see `medark key list`)")
    if action != "remove" and ctx.args.id:
        raise UsageError(f"key {action} takes no key id")
    new_password = read_new_password(ctx.args) if action in ("add", "passwd") else b""
    password = ctx.repository_password()
    with unindexed_repository(ctx.location, password, LOCKS[action], f"key {action}",
                              ctx.out.warn) as repo:
        if action == "list":
            _print_list(ctx, list_keys(repo))
        elif action == "add":
            key_id = add_key(repo, new_password)
            _done(ctx, {"message_type": "key_added", "id": key_id},
                  f"saved new key with ID {key_id[:8]}")
        elif action == "remove":
            key_id = remove_key(repo, ctx.args.id)
            _done(ctx, {"message_type": "key_removed", "id": key_id},
                  f"removed key {key_id[:8]}")
        else:
            new_id, old_id = change_password(repo, new_password)
            _done(ctx, {"message_type": "key_changed", "id": new_id, "removed": old_id},
                  f"saved new key with ID {new_id[:8]}; removed old key {old_id[:8]}")
    return 0


def _done(ctx: Context, doc: dict[str, str], text: str) -> None:
    if ctx.out.as_json:
        ctx.out.json(doc)
    else:
        ctx.out.text(text)


def _print_list(ctx: Context, keys: list[KeyEntry]) -> None:
    if ctx.out.as_json:
        ctx.out.json([k.public() for k in keys])
        return
    rows = [(("*" if k.current else " ") + k.id[:8], k.username, k.hostname,
             k.created.replace("T", " ")[:19] if k.created else "",
             "DAMAGED" if k.damaged else "") for k in keys]
    header = (" ID", "User", "Host", "Created", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "-" * (sum(widths) + 3 * 2 + 8)
    ctx.out.text("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)).rstrip())
    ctx.out.text(line)
    for row in rows:
        ctx.out.text("  ".join(c.ljust(w) for c, w in zip(row, [*widths, 0], strict=True))
                     .rstrip())
    ctx.out.text(line)
    for k in keys:
        if k.damaged:
            ctx.out.warn(f"key {k.id[:8]}: {k.damaged}")


COMMAND = Command("key", "manage keys (passwords): list, add, remove ID, passwd",
                  add_arguments, run)
