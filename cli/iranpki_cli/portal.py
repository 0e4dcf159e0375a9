"""`iranpki portal serve`: the web portals (portals/, Django) on the workspace's store."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import home_option, workspace
from .handling import HandledGroup


@click.group(cls=HandledGroup)
def portal() -> None:
    """The web portals: the public repository (and, as they come, the applicant's, the
    registration office's and the laboratory's). None of them holds a CA key."""


@portal.command("serve")
@click.option("--portal", "portals", multiple=True, type=click.Choice(["repository", "applicant", "office", "lab"]),
              default=("repository",), show_default=True, help="Which portal to serve (repeatable).")
@click.option("--certificate", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Serve HTTPS with this certificate (PEM, with its chain); the office portal needs it.")
@click.option("--key", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The certificate's private key (PEM).")
@click.option("--client-ca", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The CA certificates that issue officers' client certificates (PEM); the office portal needs them.")
@click.option("--lab-certificate", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The laboratory's signing certificates (PEM): the lab portal takes reports signed by these only.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--name", "names", multiple=True,
              help="A host name the portal answers for (repeatable), e.g. the repository's, as its certificates' "
                   "URLs name it.")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True)
@home_option
def serve(portals: tuple[str, ...], certificate: str | None, key: str | None, client_ca: str | None,
          lab_certificate: str | None, host: str,
          port: int, names: tuple[str, ...], threads: int, home: str) -> None:
    """Serve the portals over HTTP on the embedded defaults (the workspace's SQLite store).

    The repository is plain HTTP, as the CRL and CA certificate URLs in certificates are. The
    office portal signs officers in with the client certificate on their token: it is served
    over HTTPS here (--certificate, --key, --client-ca), or behind a TLS front end that passes the
    verified client certificate (docs/portals.md).

    \b
    Example:
      iranpki portal serve --portal repository --port 8080 --name repository.example.ir
      iranpki portal serve --portal office --port 8443 --certificate ra.pem --key ra.key --client-ca cas.pem
    """
    from iranpki_portals.serve import serve as run

    if "office" in portals and (certificate is None or key is None or client_ca is None):
        raise click.UsageError("the office portal signs officers in with their client certificate: give --certificate, "
                               "--key and --client-ca (the CAs of the officers' certificates)")
    if (certificate is None) != (key is None):
        raise click.UsageError("--certificate and --key go together")
    if lab_certificate is not None:
        import os

        os.environ["IRANPKI_PORTALS_LAB_CERTIFICATES"] = str(Path(lab_certificate).resolve())
    workspace(home).close()
    run(home, host=host, port=port, certificate=certificate, key=key, client_cas=client_ca, threads=threads,
        portals=portals, names=names, on_ready=lambda url: (click.echo(f"listening on {url}"), sys.stdout.flush()))
