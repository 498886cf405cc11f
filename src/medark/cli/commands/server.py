"""`medark server`: the management API (users, roles, institutions, sign-in) on
FastAPI; `medark server init` creates the regional center and its three administrators.

Not `medark serve` (a repository server for rest: locations). The catalog URL comes from
--catalog or MEDARK_CATALOG (a PostgreSQL URL with a password belongs in the
environment, not in argv). docs/server.md has the roles, the policy and the endpoints.
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from medark.cli import server_config
from medark.cli.command import Command
from medark.cli.context import Context
from medark.cli.parser import global_options
from medark.config import environment as env
from medark.errors import UsageError

HELP = "the management API server: users, roles, sign-in (init: the administrators)"
EPILOG = ("Run `medark server init --catalog URL` once; it prints each administrator's "
          "one-time password. Listening beyond loopback needs --tls-cert and --tls-key. "
          "See docs/server.md.")


def _catalog_option(p: argparse.ArgumentParser, default: object = None) -> None:
    p.add_argument("--catalog", metavar="URL", default=default,
                   help="catalog, sqlite:///PATH or postgresql://… (default "
                        "$MEDARK_CATALOG)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400 * 365:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds above 0")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _proxy(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address or network "
                                         "(e.g. 10.0.0.5 or 10.0.0.0/24)") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    _catalog_option(p)
    p.add_argument("--listen", default="127.0.0.1:8443", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:8443; beyond loopback "
                        "needs TLS)")
    p.add_argument("--tls-cert", type=Path, metavar="FILE",
                   help="serve HTTPS with this certificate (PEM, chain after it)")
    p.add_argument("--tls-key", type=Path, metavar="FILE",
                   help="the certificate's private key (PEM)")
    p.add_argument("--idle-timeout", type=_seconds, default=900.0, metavar="SECONDS",
                   help="end a session idle this long (default 900)")
    p.add_argument("--lockout-after", type=_count, default=5, metavar="N",
                   help="lock an account after N failed logins in a row (default 5)")
    p.add_argument("--lockout-for", type=_seconds, default=900.0, metavar="SECONDS",
                   help="for this long (default 900)")
    p.add_argument("--password-min-length", type=_count, default=12, metavar="N",
                   help="least password length (default 12)")
    p.add_argument("--password-min-classes", type=int, choices=range(1, 5), default=3,
                   metavar="N", help="least kinds of characters of lower case, upper "
                                     "case, digits, others (default 3)")
    p.add_argument("--login-rate", type=_count, default=10, metavar="N",
                   help="login attempts per client address per minute (default 10)")
    p.add_argument("--trusted-proxy", type=_proxy, action="append", default=[],
                   metavar="ADDR", help="a reverse proxy (IP address or network) whose "
                   "X-Forwarded-For names the client; repeatable (default: none, the "
                   "header is ignored)")
    p.add_argument("--job-stale-after", type=_seconds, default=600.0, metavar="SECONDS",
                   help="fail a running job whose agent reported nothing (no progress, "
                        "log or status) for this long (default 600)")
    p.add_argument("--keep-alive", type=_seconds, default=15.0, metavar="SECONDS",
                   help="send a comment on a live event stream after this long without "
                        "an event, so that proxies do not close it as idle (default 15)")
    p.add_argument("--agent-offline-after", type=_seconds, metavar="SECONDS",
                   help="mark an agent offline (audited, alert agent_offline) after this "
                        "long without a heartbeat (default: 3 heartbeat intervals, 30)")
    p.add_argument("--single-security-admin", action="store_true",
                   help="the deployment has one security administrator: changes to "
                        "administrator accounts take effect without a second one's "
                        "approval (four eyes), each recorded approval.waived in the "
                        "audit trail")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    init = sub.add_parser("init", parents=[global_options()],
                          help="create the regional center and its system, security and "
                               "audit administrators, each with a one-time password",
                          description="create the regional center and its three "
                                      "administrators (sysadmin, secadmin, auditadmin); "
                                      "prints each one-time password once; exits 1 if "
                                      "the catalog is initialised already")
    _catalog_option(init, argparse.SUPPRESS)
    init.add_argument("--center", default="center", metavar="NAME",
                      help="the regional center's short name (default center)")
    init.add_argument("--center-title", default="", metavar="TEXT",
                      help="its full name (default: the short name)")
    server_config.add_parser(sub, _catalog_option)


def _catalog_url(args: argparse.Namespace) -> str:
    url = getattr(args, "catalog", None) or env.CATALOG.get()
    if not url:
        raise UsageError("no catalog: give --catalog URL or set MEDARK_CATALOG")
    return str(url)


def run(ctx: Context) -> int:
    if getattr(ctx.args, "action", None) == "init":
        return _init(ctx)
    if getattr(ctx.args, "action", None) == "config":
        return server_config.run(ctx, _catalog_url(ctx.args))
    return _serve(ctx)


def _init(ctx: Context) -> int:
    from medark.catalog.store import Catalog
    from medark.server.accounts import ADMINS, Accounts
    from medark.util import clock

    args = ctx.args
    catalog = Catalog(_catalog_url(args))
    try:
        passwords = Accounts(catalog).initialise(args.center, args.center_title
                                                 or args.center, clock.now())
    finally:
        catalog.close()
    roles = dict(ADMINS)
    if ctx.out.as_json:
        ctx.out.json({"message_type": "server_initialised", "center": args.center,
                      "administrators": [{"user": u, "role": roles[u],
                                          "one_time_password": p}
                                         for u, p in passwords.items()]})
        return 0
    ctx.out.text(f"initialised: regional center {args.center!r} and its administrators. "
                 "Each one-time password is shown only now; hand it to its holder, who "
                 "must change it at first login:")
    for user, password in passwords.items():
        ctx.out.text(f"  {user:<11} {roles[user]:<11} {password}")
    return 0


def _serve(ctx: Context) -> int:
    from datetime import timedelta

    from medark.server.auth import AuthPolicy
    from medark.server.passwords import PasswordPolicy
    from medark.server.run import ServerOptions, serve

    args = ctx.args
    policy = AuthPolicy(PasswordPolicy(args.password_min_length, args.password_min_classes),
                        args.lockout_after, timedelta(seconds=args.lockout_for),
                        timedelta(seconds=args.idle_timeout))
    options = ServerOptions(_catalog_url(args), args.listen, args.tls_cert, args.tls_key,
                            policy, args.login_rate, tuple(args.trusted_proxy),
                            job_stale_after=args.job_stale_after,
                            agent_offline_after=args.agent_offline_after,
                            single_security_admin=args.single_security_admin,
                            keep_alive=args.keep_alive)

    def announce(url: str, loopback: bool) -> None:
        reach = "loopback only" if loopback else "all networks"
        if ctx.out.as_json:
            ctx.out.json({"message_type": "serving", "url": url, "docs": f"{url}/docs",
                          "loopback_only": loopback, "tls": url.startswith("https")})
        else:
            ctx.out.text(f"management server at {url} ({reach}); API docs at {url}/docs")
        if args.single_security_admin:
            ctx.out.warn("warning: --single-security-admin: changes to administrator "
                         "accounts need no second security administrator's approval")

    serve(options, announce)
    return 0


COMMAND = Command("server", HELP, add_arguments, run)
