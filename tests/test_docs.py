"""What the README, docs/ and every command's --help tell an operator to type must work
(review item 13): the README's tour runs as a script on a fresh workspace, and every `iranpki`
command line in the README, docs/ and the help examples names commands and options that exist,
with the values and arguments they need."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from iranpki_cli.main import COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent
TOUR = ROOT / "examples" / "operator-tour.sh"
BEGIN, END = "# --- README begin ---\n", "# --- README end ---"
_CONTROL = {"&&", "||", ";", "&", "|"}


def _tour_block() -> str:
    text = TOUR.read_text(encoding="utf-8")
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)]


def _sh_blocks(text: str) -> Iterator[str]:
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        yield block


def _command_lines(block: str) -> Iterator[str]:
    """Each shell command line of ``block`` (continuations joined), split at ; && & |."""
    for line in block.replace("\\\n", " ").splitlines():
        try:
            tokens = shlex.split(line, comments=True, posix=True)
        except ValueError:
            continue
        segment: list[str] = []
        skip = False
        for tok in [*tokens, ";"]:
            if skip:
                skip = False
                continue
            if tok in _CONTROL or tok.endswith(";"):
                if segment:
                    yield " ".join(shlex.quote(t) for t in segment)
                segment = []
            elif re.fullmatch(r"\d?[<>]{1,2}", tok):
                skip = True  # a redirection and its file
            elif re.fullmatch(r"\d?[<>]{1,2}\S+", tok) or "=$!" in tok:
                continue
            else:
                segment.append(tok)


def check_command_line(line: str) -> None:
    """Parse ``line`` (``iranpki ...``) as click would, without running it: every command and
    option exists, options have their values, required options and arguments are there."""
    argv = shlex.split(line)[1:]
    warnings.simplefilter("ignore", DeprecationWarning)
    cmd: click.Command = cli
    ctx = click.Context(cli, info_name="iranpki")
    opts, args, _ = cmd.make_parser(ctx).parse_args(argv)
    while isinstance(cmd, click.Group):
        if not args:
            if opts.get("version") or opts.get("help"):
                return
            raise click.UsageError("no command named")
        sub = cmd.get_command(ctx, args[0])
        if sub is None:
            raise click.UsageError(f"no command {args[0]!r}")
        ctx = click.Context(sub, parent=ctx, info_name=args[0])
        cmd = sub
        opts, args, _ = cmd.make_parser(ctx).parse_args(args[1:])
    if opts.get("help"):
        return
    if args:
        raise click.UsageError(f"unexpected arguments {args}")
    missing = [p.name for p in cmd.params if p.required and
               (opts.get(p.name) in (None, ()) or "UNSET" in repr(opts.get(p.name)))]
    if missing:
        raise click.UsageError(f"missing {missing}")


def _help_examples() -> Iterator[tuple[str, str]]:
    ctx = click.Context(cli)
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        assert cmd is not None
        subs = list(cmd.commands.items()) if isinstance(cmd, click.Group) else [(None, cmd)]
        for where, c in [(name, cmd)] + [(f"{name} {s}", sc) for s, sc in subs if s is not None]:
            text = c.help or ""
            if "Example" not in text:
                continue
            for line in _command_lines(text[text.index("Example"):].replace("\\\\\n", "\\\n")):
                if line.startswith("iranpki "):
                    yield where, line


def test_the_readme_tour_is_the_script() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _tour_block() in list(_sh_blocks(readme)), "README's 'Using the command' differs from examples/operator-tour.sh"


def test_the_tour_runs_on_a_fresh_workspace(tmp_path: Path) -> None:
    """The README's tour, in a network namespace of its own (its ports 8080 and 3161 are free there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRANPKI_") and k != "SOFTHSM2_CONF"}
    out = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec bash "$0" "$1"', str(TOUR),
                          str(tmp_path / "tour")], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout + out.stderr
    for seen in ("site.pem: revoked", "Response verify OK", "granted:", "verified: signed by", "valid pdf signature",
                 "operator tour: done"):
        assert seen in text, (seen, text[-3000:])
    assert "Traceback" not in text


def test_every_command_line_in_the_readme_and_docs_parses() -> None:
    checked = 0
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in _sh_blocks(doc.read_text(encoding="utf-8")):
            for line in _command_lines(block):
                if line.startswith("iranpki "):
                    try:
                        check_command_line(line)
                    except click.ClickException as exc:
                        pytest.fail(f"{doc.name}: `{line}`: {exc.format_message()}")
                    checked += 1
    assert checked >= 30, checked


def test_every_help_example_parses() -> None:
    seen = 0
    for where, line in _help_examples():
        try:
            check_command_line(line)
        except click.ClickException as exc:
            pytest.fail(f"iranpki {where} --help: `{line}`: {exc.format_message()}")
        seen += 1
    assert seen >= 60, seen


def test_commands_and_options_named_in_the_docs_prose_exist() -> None:
    """Inline mentions (`iranpki cert list [--ca] [--status valid|revoked]`) are not whole command
    lines, but every command and option they name must exist."""
    seen = 0
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        prose = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S).replace("\n", " ")
        for span in re.findall(r"`(iranpki [^`]+)`", prose):
            if "..." in span or "(" in span:
                continue
            line = re.sub(r"\[([^\]]*)\]", r"\1", span)  # optional parts are still options
            line = " ".join(t.split("|")[0] for t in line.split())  # one of the alternatives
            try:
                check_command_line(line)
            except (click.NoSuchOption, click.BadArgumentUsage) as exc:
                pytest.fail(f"{doc.name}: `{span}`: {exc.format_message()}")
            except click.UsageError as exc:
                if "no command" in exc.format_message() or "unexpected arguments" in exc.format_message():
                    pytest.fail(f"{doc.name}: `{span}`: {exc.format_message()}")
            except click.ClickException:
                pass  # a mention, not a whole command line: values may be left out
            seen += 1
    assert seen >= 20, seen


def test_the_checker_catches_a_drifted_line() -> None:
    """The check above must be able to fail."""
    for bad in ("iranpki cert issue --ca x --profile y --nope", "iranpki cert list --ca", "iranpki nosuch list",
                "iranpki cert revoke --reason keyCompromise", "iranpki ca export a b"):
        with pytest.raises(click.ClickException):
            check_command_line(bad)
    check_command_line("iranpki cert revoke site.pem --reason keyCompromise --json")


def test_the_developer_guide_snippet_runs(tmp_path: Path) -> None:
    """docs/developer.md's first block, run as it stands next to a workspace `./ca` with a CA
    `gica2` (software keys here) and an applicant's `site.csr`."""
    text = (ROOT / "docs" / "developer.md").read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("IRANPKI_")},
           "IRANPKI_KEY_PASSPHRASE": "a passphrase for the docs test"}
    iranpki = str(Path(sys.executable).parent / "iranpki")
    for argv in (["init", "ca", "--repository-url", "http://repo.test.ir"],
                 ["key", "generate", "--home", "ca", "--label", "root", "--algorithm", "p384"],
                 ["key", "generate", "--home", "ca", "--label", "gica2", "--algorithm", "p256"],
                 ["ca", "create-root", "--home", "ca", "--name", "root", "--key", "root", "--subject", "C=IR,O=T,CN=T Root"],
                 ["ca", "create-intermediate", "--home", "ca", "--parent", "root", "--level", "1", "--purpose", "tls",
                  "--name", "gica2",
                  "--key", "gica2", "--subject", "C=IR,O=T,CN=T GICA"]):
        done = subprocess.run([iranpki, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    done = subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                           "-keyout", "site.key", "-subj", "/C=IR/ST=Tehran/O=Example Co/CN=www.example.ir",
                           "-out", "site.csr"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "-----BEGIN CERTIFICATE-----" in lines and re.fullmatch(r"[0-9a-f]{1,40}", lines[-2]), out.stdout


def test_the_repository_cites_no_file_outside_it() -> None:
    """Code, data and documents cite RFCs, public sources and docs/, never notes kept outside the
    repository (issue 14): what a reader needs is in docs/architecture.md and docs/national-pki.md."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    outside = []
    for name in tracked:
        if name.endswith((".py", ".md", ".yaml", ".sh", ".toml")) and name != "tests/test_docs.py" and (root / name).is_file():
            text = (root / name).read_text("utf-8", errors="replace")
            outside += [f"{name}: {word}" for word in ("DESIGN.md", "STYLE.md", "DOMAIN.md") if word in text]
    assert not outside, outside
    assert (root / "docs" / "architecture.md").is_file() and (root / "docs" / "national-pki.md").is_file()
