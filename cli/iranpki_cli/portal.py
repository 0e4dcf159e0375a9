"""`iranpki portal serve`: the web portals (portals/, Django) on the workspace's store."""

from __future__ import annotations

import sys

import click

from .common import home_option, workspace
from .handling import HandledGroup


@click.group(cls=HandledGroup)
def portal() -> None:
    """The web portals: the public repository (and, as they come, the applicant's, the
    registration office's and the laboratory's). None of them holds a CA key."""


@portal.command("serve")
@click.option("--portal", "portals", multiple=True, type=click.Choice(["repository", "applicant"]), default=("repository",),
              show_default=True, help="Which portal to serve (repeatable).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--name", "names", multiple=True,
              help="A host name the portal answers for (repeatable), e.g. the repository's, as its certificates' "
                   "URLs name it.")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True)
@home_option
def serve(portals: tuple[str, ...], host: str, port: int, names: tuple[str, ...], threads: int, home: str) -> None:
    """Serve the portals over HTTP on the embedded defaults (the workspace's SQLite store).

    The repository is plain HTTP, as the CRL and CA certificate URLs in certificates are. For the
    other portals, production runs behind a TLS front end (docs/portals.md).

    \b
    Example:
      iranpki portal serve --portal repository --port 8080 --name repository.example.ir
    """
    from iranpki_portals.serve import serve as run

    workspace(home).close()
    run(home, host=host, port=port, certificate=None, key=None, client_cas=None, threads=threads,
        portals=portals, names=names, on_ready=lambda url: (click.echo(f"listening on {url}"), sys.stdout.flush()))
