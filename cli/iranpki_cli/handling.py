"""How every command ends when something goes wrong: one message (a JSON object on stderr with
``--json``) and an exit status, never a trace unless ``--verbose``. Kept apart from the commands
and light to import: the root of the command loads it before it knows which command runs."""

from __future__ import annotations

import dataclasses
import errno
import json
import re
import sys
from typing import Any

import click

from iranpki.errors import IranPkiError, ProfileViolationError

__all__ = ["HandledCommand", "HandledGroup", "describe_error", "report_error", "report_usage_error"]


# What to do about a file the system refused, by errno: the one line an operator needs.
_OS_ADVICE = {
    errno.EACCES: "check the file's owner and permissions, or run as the workspace's owner",
    errno.EPERM: "check the file's owner and permissions, or run as the workspace's owner",
    errno.EROFS: "the file system is read-only; remount it read-write or use a workspace on a writable disk",
    errno.ENOSPC: "the disk is full; free space and run the command again (nothing was recorded half-way)",
    errno.EDQUOT: "the disk quota is used up; free space and run the command again",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "the path is a folder; give a file",
    errno.EEXIST: "the file exists already; remove it or choose another name",
}


def _code(exc: BaseException) -> str:
    """``ProfileViolationError`` -> ``profile-violation``: the error's kind, stable for scripts."""
    name = type(exc).__name__.removesuffix("Error") or type(exc).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _details(exc: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in vars(exc).items():
        if key.startswith("_"):
            continue
        if isinstance(value, list):
            value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
        out[key] = value
    return out


def describe_error(exc: Exception) -> tuple[str, str, dict[str, Any]]:
    """``(code, message, details)`` for an error a command ended with: the message in the
    user's terms, one line (a profile violation lists its violations below it)."""
    if isinstance(exc, IranPkiError):
        return _code(exc), str(exc), _details(exc)
    if isinstance(exc, OSError):
        what = exc.filename or "a file"
        advice = _OS_ADVICE.get(exc.errno or 0, "check the file and the disk")
        reason = exc.strerror or type(exc).__name__
        details = {"path": str(exc.filename) if exc.filename else None, "errno": exc.errno, "reason": reason}
        if exc.filename2:
            details["path2"] = str(exc.filename2)
        return "file", f"cannot use {what}: {reason}; {advice}", details
    if isinstance(exc, MemoryError):
        return "memory", "out of memory; free memory or split the work (for example one CRL shard at a time)", {}
    return ("internal", f"unexpected {type(exc).__name__}: {exc}. This is a fault in iranpki; run the command "
            "again with --verbose for the trace and report it", {"type": type(exc).__name__})


def report_error(exc: Exception, *, as_json: bool) -> None:
    """Print ``exc`` on stderr: one JSON object with ``--json``, else one line for people."""
    code, message, details = describe_error(exc)
    if as_json:
        sys.stderr.write(json.dumps({"error": {"code": code, "message": message, "details": details}},
                                    ensure_ascii=False, default=str) + "\n")
        return
    from rich.markup import escape

    from .render import err_console

    if isinstance(exc, ProfileViolationError):
        err_console.print(f"[bold red]refused:[/] the request breaks profile {escape(repr(exc.profile))}:",
                          highlight=False)
        for v in exc.violations:
            err_console.print(f"  - [bold]{escape(v.attribute)}[/] = {escape(repr(v.value))}: {escape(v.rule)}",
                              highlight=False)
        err_console.print("Correct the request and submit it again.")
    else:
        err_console.print("[bold red]error:[/] " + escape(message), highlight=False)


def report_usage_error(exc: click.ClickException) -> None:
    """A usage error (unknown option, missing argument) as a JSON object, for ``--json``."""
    sys.stderr.write(json.dumps({"error": {"code": "usage", "message": exc.format_message(), "details": {}}},
                                ensure_ascii=False) + "\n")


_JSON = "iranpki.json"


def _wants_json(ctx: click.Context) -> bool:
    return bool(ctx.meta.get(_JSON) or ctx.params.get("as_json"))


class HandledCommand(click.Command):
    """A command whose errors end in one message (a JSON object on stderr with ``--json``) and
    exit status 1, never a trace; the trace only with ``--verbose``. Every command of the CLI is
    one, so the rule holds however a command is reached (from the root, or a group on its own)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if _wants_json(ctx):
                report_usage_error(exc)
                raise click.exceptions.Exit(exc.exit_code) from None
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if ctx.find_root().params.get("verbose"):
                raise
            report_error(exc, as_json=_wants_json(ctx))
            raise click.exceptions.Exit(1) from None


class HandledGroup(click.Group):
    """A group of :class:`HandledCommand`: arguments that are not UTF-8 text are refused before
    anything runs, and usage errors are JSON with ``--json``."""

    command_class = HandledCommand
    group_class = type  # subgroups are HandledGroups too

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_JSON] = ctx.meta.get(_JSON) or "--json" in args
        try:
            for i, arg in enumerate(args, 1):
                try:
                    arg.encode("utf-8")
                except UnicodeEncodeError:
                    shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
                    raise click.UsageError(
                        f"argument {i} ('{shown}') is not UTF-8 text; type it again in a UTF-8 terminal "
                        "(LANG=C.UTF-8), or pass the value in a file where the command takes one") from None
            return super().parse_args(ctx, args)
        except click.ClickException as exc:
            if ctx.meta[_JSON]:
                report_usage_error(exc)
                raise click.exceptions.Exit(exc.exit_code) from None
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:  # a subcommand's usage error
            if ctx.meta.get(_JSON):
                report_usage_error(exc)
                raise click.exceptions.Exit(exc.exit_code) from None
            raise
