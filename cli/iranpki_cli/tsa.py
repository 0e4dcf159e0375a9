"""`iranpki tsa serve|stamp`."""

from __future__ import annotations

import hashlib
import logging
import sys

import click

from iranpki.tsa import fetch_stamp, verify_token
from iranpki.workspace import HOME_ENV

from .common import (
    home_option,
    json_option,
    key_secrets,
    relying_party_roots,
    workspace,
)
from .handling import HandledGroup
from .render import console, emit_json


@click.group(cls=HandledGroup)
def tsa() -> None:
    """Time-stamp authority (RFC 3161 with RFC 5816 ESSCertIDv2) over HTTP, and a client.

    The TSA signs with --key under a certificate of the tsa profile (critical timeStamping
    EKU) that --ca issued for that key: the newest valid one, or the one named by --cert.

    \b
    Example:
      export IRANPKI_KEY_PASSPHRASE=...            # or IRANPKI_PKCS11_PIN for a token key
      iranpki key generate --label tsa1 --algorithm rsa2048
      openssl pkey -in keys/tsa1.pem -pubout -out tsa1.pub.pem   # the public key (asks the passphrase)
      iranpki cert issue --ca gica2 --profile tsa --public-key tsa1.pub.pem \\
          --subject 'C=IR,O=Example,CN=Example TSA 1' --out tsa1.pem
      iranpki tsa serve --ca gica2 --key tsa1 --host 127.0.0.1 --port 3161 --workers 2
      iranpki tsa stamp contract.pdf --url http://127.0.0.1:3161/ --trust root.pem --out contract.tsr
      openssl ts -verify -data contract.pdf -in contract.tsr -CAfile root.pem -untrusted chain.pem
    """


@tsa.command()
@home_option
@click.option("--ca", "ca_name", required=True, help="The CA that issued the TSA certificate.")
@click.option("--key", "key_ref", required=True, metavar="REF",
              help="The TSA key: a pkcs11: URI or a software key name of the workspace.")
@click.option("--cert", "cert_serial", default=None, metavar="SERIAL",
              help="The TSA certificate's serial (hex, as `iranpki cert list` shows it); default: the newest "
                   "valid tsa certificate --ca issued for --key.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False), default=None,
              help="Passphrase of a software key (else IRANPKI_KEY_PASSPHRASE or a prompt).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=3161, show_default=True,
              help="Port to listen on (0: any free port; the line 'listening on URL' names it).")
@click.option("--workers", type=click.IntRange(1, 256), default=2, show_default=True,
              help="Worker processes answering HTTP (one per core).")
@click.option("--timeout", type=click.FloatRange(0.1, 300), default=10.0, show_default=True,
              help="Seconds a client may take to send a whole request before it is cut off.")
@click.option("--max-client-connections", type=click.IntRange(1, 4096), default=256, show_default=True,
              help="Connections one client address may hold open in each worker (raise it for a large NAT).")
def serve(home: str, ca_name: str, key_ref: str, cert_serial: str | None, passphrase_file: str | None,
          host: str, port: int, workers: int, timeout: float, max_client_connections: int) -> None:
    """Answer time-stamp requests (POST application/timestamp-query, any path) until SIGTERM or Ctrl-C.

    Prints 'listening on http://HOST:PORT' on stderr once every worker answers. Refuses to start
    with a certificate that is not a TSA certificate, is not valid now, or is for another key.

    \b
    Example:
      iranpki tsa serve --ca gica2 --key 'pkcs11:token=TSA;object=tsa1' --port 3161 --workers 2
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s iranpki-tsa[%(process)d] %(levelname)s %(message)s")

    def ready(url: str) -> None:
        click.echo(f"listening on {url}", err=True)

    workspace(home).serve_tsa(ca_name, key_ref, certificate=cert_serial, host=host, port=port, workers=workers,
                              secret=key_secrets(passphrase_file), request_timeout=timeout,
                              max_client_connections=max_client_connections, on_ready=ready)


@tsa.command()
@click.argument("file", type=click.File("rb"))
@click.option("--url", required=True, help="The TSA's URL (http:// or https://); nothing else is contacted.")
@click.option("--hash", "hash_name", type=click.Choice(["sha256", "sha384", "sha512"]), default="sha256",
              show_default=True, help="Hash of FILE sent as the message imprint.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the whole reply (DER TimeStampResp, as openssl ts -verify -in reads it).")
@click.option("--timeout", type=click.FloatRange(0.1, 300), default=30.0, show_default=True)
@click.option("--trust", "trust_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Root certificate(s) the TSA must chain to; replace the default (the national root and "
                   "the workspace's roots).")
@click.option("--no-verify", is_flag=True, help="Do not verify the token's signature and the TSA's certificate.")
@click.option("--home", type=click.Path(file_okay=False), envvar=HOME_ENV, default=None,
              help=f"A workspace whose root CAs are trusted too (or set {HOME_ENV}; default: the current folder "
                   "if it is one).")
@json_option
def stamp(file: click.utils.LazyFile, url: str, hash_name: str, out: str | None, timeout: float,
          trust_files: tuple[str, ...], no_verify: bool, home: str | None, as_json: bool) -> None:
    """Get a time-stamp for FILE (- for stdin) from the TSA at --url, check that it is granted and
    answers this request (imprint and nonce), verify its signature and the TSA's certificate
    (timeStamping usage, a chain to a trusted root: the same rule as `iranpki verify`, the
    national root and the workspace's root CAs, or --trust), and print its time, serial and
    policy.

    \b
    Example:
      iranpki tsa stamp contract.pdf --url http://127.0.0.1:3161/ --out contract.tsr
      openssl ts -reply -in contract.tsr -text
    """
    h = hashlib.new(hash_name)
    while chunk := file.read(1 << 20):
        h.update(chunk)
    result = fetch_stamp(url, h.digest(), hash_name, timeout=timeout)
    tsa_subject = None
    if not no_verify:
        tsa_subject = verify_token(result.token, relying_party_roots(home, trust_files)).raise_for_error().subject  # type: ignore[attr-defined]
    if out:
        with open(out, "wb") as f:
            f.write(result.reply)
    info = {"gen_time": result.gen_time.isoformat(), "serial": result.serial, "serial_hex": f"{result.serial:x}",
            "policy": result.policy, "accuracy_ms": result.accuracy_ms, "hash": result.hash_name,
            "nonce": result.nonce, "out": out, "tsa": tsa_subject, "verified": not no_verify}
    if as_json:
        emit_json(info)
    else:
        console.print(f"granted: {info['gen_time']} serial {info['serial_hex']} policy {result.policy} "
                      f"accuracy {result.accuracy_ms} ms" + (f" -> {out}" if out else ""), highlight=False)
        if tsa_subject:
            console.print(f"verified: signed by {tsa_subject}", highlight=False)
