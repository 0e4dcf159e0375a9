"""`iranpki ocsp serve|prepare`."""

from __future__ import annotations

import logging
import sys

import click

from .common import home_option, json_option, key_secrets, workspace
from .handling import HandledGroup
from .render import console, emit_json, progress_counter

_signing_option = click.option(
    "--signing", type=click.Choice(["pre-produced", "on-demand"]), default="pre-produced", show_default=True,
    help="pre-produced: answer from responses signed ahead (a nonce or several certificates are still signed "
         "live when the CP allows it); on-demand: sign every response when it is asked for.")


def _common(func):  # noqa: ANN001, ANN202 - a click decorator
    func = click.option("--responder-passphrase-file", type=click.Path(dir_okay=False), default=None,
                        help="Passphrase of a software responder key (default: as for the CA key).")(func)
    func = click.option("--passphrase-file", type=click.Path(dir_okay=False), default=None,
                        help="Passphrase of a software CA key (else IRANPKI_KEY_PASSPHRASE or a prompt).")(func)
    func = click.option("--responder-key", default=None, metavar="REF",
                        help="Sign as a delegated responder with this key (pkcs11: URI or software key name); "
                             "each CA issues it an ocsp-signer certificate, renewed before it expires. "
                             "Default: sign with each CA's own key.")(func)
    func = click.option("--include-ca-certificate", is_flag=True,
                        help="Send the CA's certificate in every response, for clients that check the signer "
                             "against trust anchors alone (GnuTLS ocsptool --load-trust). Default: none with a "
                             "CA-signed response (RFC 6960 4.2.1), the responder's with a delegated one.")(func)
    func = click.option("--ca", "ca_names", multiple=True, required=True,
                        help="A CA to answer for (repeatable: one responder for several CAs).")(func)
    return home_option(func)


@click.group(cls=HandledGroup)
def ocsp() -> None:
    """OCSP responder (RFC 6960, RFC 9919 lightweight profile) over HTTP, GET and POST.

    \b
    Example:
      export IRANPKI_PKCS11_PIN=...                 # or IRANPKI_KEY_PASSPHRASE for software keys
      iranpki ocsp serve --ca gica2 --host 0.0.0.0 --port 8080 --workers 2
      iranpki ocsp serve --ca root --ca gica2 --port 8080 --responder-key 'pkcs11:token=OCSP;object=ocsp'
      iranpki ocsp prepare --ca gica2               # sign the pre-produced responses once
      openssl ocsp -issuer gica2.pem -cert site.pem -url http://127.0.0.1:8080/ -CAfile root.pem
    """


@ocsp.command()
@_common
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0: any free port; the line 'listening on URL' names it).")
@click.option("--workers", type=click.IntRange(1, 256), default=2, show_default=True,
              help="Worker processes answering HTTP (one per core); one more process keeps responses signed.")
@_signing_option
@click.option("--timeout", type=click.FloatRange(0.1, 300), default=10.0, show_default=True,
              help="Seconds a client may take to send a whole request before it is cut off.")
@click.option("--max-client-connections", type=click.IntRange(1, 4096), default=256, show_default=True,
              help="Connections one client address may hold open in each worker (raise it for a large NAT).")
@click.option("--refresher-silence", type=click.FloatRange(1, 3600), default=30.0, show_default=True,
              help="GET /health answers 503 when the refresher has not reported for this many seconds.")
@click.option("--max-source-lag", type=click.FloatRange(1, 86400), default=None,
              help="On a standby (a replica of the store): the oldest copy that still answers 'good' (default and "
                   "most: the CP's status.ocsp.max_source_lag_seconds); older, only revocations are answered.")
def serve(home: str, ca_names: tuple[str, ...], include_ca_certificate: bool, responder_key: str | None,
          passphrase_file: str | None, responder_passphrase_file: str | None, host: str, port: int, workers: int,
          signing: str, timeout: float, max_client_connections: int, refresher_silence: float,
          max_source_lag: float | None) -> None:
    """Answer OCSP requests until SIGTERM or Ctrl-C.

    Prints 'listening on http://HOST:PORT' as soon as it answers; the pre-produced responses are
    signed in the background meanwhile (what is not ready yet is signed for the request). A
    revocation (iranpki cert revoke) is served within a second. GET /health tells whether the
    process that keeps the responses signed is alive and keeping up (200, or 503 with the reason).
    On a workspace whose store is a PostgreSQL standby it runs no refresher (the primary's signs)
    and never answers 'good' from a copy older than --max-source-lag.

    \b
    Example:
      iranpki ocsp serve --ca gica2 --host 0.0.0.0 --port 8080 --workers 2
      curl -s http://127.0.0.1:8080/health
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s iranpki-ocsp[%(process)d] %(levelname)s %(message)s")
    secret = key_secrets(passphrase_file)
    responder_secret = key_secrets(responder_passphrase_file) if responder_passphrase_file else None

    def ready(url: str) -> None:
        click.echo(f"listening on {url}", err=True)

    workspace(home).serve_ocsp(list(ca_names), host=host, port=port, workers=workers, responder_key=responder_key,
                               signing=signing, secret=secret, responder_secret=responder_secret,
                               request_timeout=timeout, max_client_connections=max_client_connections,
                               max_refresher_silence=refresher_silence, on_ready=ready,
                               include_ca_certificate=include_ca_certificate, max_source_lag=max_source_lag)


@ocsp.command()
@_common
@click.option("--all", "everything", is_flag=True, help="Re-sign every response, not only those that are due.")
@json_option
def prepare(home: str, ca_names: tuple[str, ...], include_ca_certificate: bool, responder_key: str | None,
            passphrase_file: str | None, responder_passphrase_file: str | None, everything: bool,
            as_json: bool) -> None:
    """Sign the pre-produced responses that are due (missing, near nextUpdate, or older than a
    status change), for both SHA-1 and SHA-256 CertIDs, without serving.

    \b
    Example:
      iranpki ocsp prepare --ca gica2
      iranpki ocsp prepare --ca gica2 --all --json
    """
    with progress_counter("OCSP responses signed") as progress:
        signed = workspace(home).prepare_ocsp(
            list(ca_names), responder_key=responder_key, everything=everything, secret=key_secrets(passphrase_file),
            responder_secret=key_secrets(responder_passphrase_file) if responder_passphrase_file else None,
            progress=progress, include_ca_certificate=include_ca_certificate)
    if as_json:
        emit_json({"cas": list(ca_names), "signed": signed})
    else:
        console.print(f"signed {signed} pre-produced OCSP response(s) for {', '.join(ca_names)}", highlight=False)
