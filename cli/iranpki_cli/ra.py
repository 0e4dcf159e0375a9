"""`iranpki ra office|officer|requests|issue|serve`: the CA operator's side of registration
(offices, officers, the queue), the CA-side worker that issues approved requests, and the RA's
API server. The desk client an officer runs at the office is `iranpki ra desk` (desk.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from iranpki.ra import OPEN_STATES, STATES, Actor
from iranpki.store import OfficeRecord, RequestRecord

from .common import home_option, json_option, key_secrets, workspace
from .desk import desk
from .handling import HandledGroup
from .render import console, emit_json, iso, table, when


def _operator() -> Actor:
    import getpass

    return Actor("operator", getpass.getuser())


@click.group(cls=HandledGroup)
def ra() -> None:
    """Registration offices, their officers, the request queue, and the CA side that issues
    what the offices approved.

    \b
    Example:
      iranpki ra office create THR-01 --name "Tehran counter 1" --city Tehran --ca gica2
      iranpki ra officer enrol p1 --office THR-01 --name "Reza Ahmadi" --role proofing --certificate p1.pem
      iranpki ra requests --state approved
      iranpki ra issue                                # carry out every approved request once
    """


ra.add_command(desk)


@ra.group()
def office() -> None:
    """Registration offices: create, list, suspend, reinstate, cancel."""


def _office_info(o: OfficeRecord) -> dict:
    return {"code": o.code, "name": o.name, "city": o.city, "cas": list(o.cas), "status": o.status,
            "created_at": iso(o.created_at)}


@office.command("create")
@click.argument("code")
@click.option("--name", required=True, help="The office's name (Persian is fine).")
@click.option("--city", required=True)
@click.option("--ca", "cas", multiple=True, required=True, help="A CA the office registers for (repeatable).")
@home_option
@json_option
def office_create(code: str, name: str, city: str, cas: tuple[str, ...], home: str, as_json: bool) -> None:
    """Create an office serving the CAs named."""
    record = workspace(home).registration().create_office(code, name, city, list(cas), _operator())
    emit_json(_office_info(record)) if as_json else console.print(f"office {record.code} created", highlight=False)


@office.command("list")
@home_option
@json_option
def office_list(home: str, as_json: bool) -> None:
    """Every office, with its status and the CAs it serves."""
    offices = workspace(home).store.list_offices()
    if as_json:
        emit_json([_office_info(o) for o in offices])
    else:
        table("registration offices", ["code", "name", "city", "CAs", "status"],
              [[o.code, o.name, o.city, ", ".join(o.cas), o.status] for o in offices])


def _set_status(code: str, status: str, home: str, as_json: bool) -> None:
    ws = workspace(home)
    record = ws.registration().set_office_status(code, status, _operator())
    pending = ws.store.list_requests(office=code, states=OPEN_STATES, limit=10_000)
    if as_json:
        emit_json({**_office_info(record), "pending_requests": [r.id for r in pending]})
    else:
        console.print(f"office {code} is {status}; {len(pending)} open request(s) of it: "
                      "`iranpki ra requests --office " + code + "`", highlight=False)


for _name, _status, _help in (("suspend", "suspended", "Suspend an office: its officers can do nothing until reinstated."),
                              ("reinstate", "active", "Reinstate a suspended office."),
                              ("cancel", "cancelled", "Cancel an office for good.")):
    def _command(code: str, home: str, as_json: bool, _status: str = _status) -> None:
        _set_status(code, _status, home, as_json)

    _command.__doc__ = _help
    office.command(_name)(json_option(home_option(click.argument("code")(_command))))


@ra.group()
def officer() -> None:
    """Registration officers: enrol, list."""


@officer.command("enrol")
@click.argument("officer_id")
@click.option("--office", required=True)
@click.option("--name", required=True)
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(["proofing", "approving", "office-manager"]),
              help="A role the officer holds (repeatable).")
@click.option("--certificate", type=click.Path(dir_okay=False, exists=True), default=None,
              help="The officer's client certificate (PEM or DER) on their token, by which they authenticate.")
@click.option("--csr", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Instead of --certificate: the CSR made on the officer's token; --ca issues an ra-officer "
                   "certificate for it, with --subject.")
@click.option("--ca", "ca_name", default=None, help="The CA that issues the officer's certificate (with --csr).")
@click.option("--subject", default=None,
              help="The officer's certificate subject (with --csr), e.g. 'C=IR,O=...,OU=THR-01,title=Registration "
                   "Officer,SN=...,GN=...,serialNumber=...,CN=...'.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the issued certificate (PEM) here.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Passphrase of a software CA key (with --csr).")
@home_option
@json_option
def officer_enrol(officer_id: str, office: str, name: str, roles: tuple[str, ...], certificate: str | None,
                  csr: str | None, ca_name: str | None, subject: str | None, out: str | None,
                  passphrase_file: str | None, home: str, as_json: bool) -> None:
    """Enrol an officer of an active office, with the client certificate on their token: one
    given, or one the CA issues now (profile ra-officer) for the CSR made on the token."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from iranpki.inputs import one_certificate

    if csr is not None and (certificate is not None or ca_name is None or subject is None):
        raise click.UsageError("--csr needs --ca and --subject, and goes without --certificate")
    ws = workspace(home)
    der = one_certificate(Path(certificate).read_bytes(), certificate).public_bytes(Encoding.DER) if certificate else None
    if csr is not None:
        # Everything the enrolment needs is checked before a certificate is issued for it.
        ws.registration().check_enrolment(officer_id, office, list(roles), _operator())
        issued = ws.issue(ca_name or "", "ra-officer", csr=Path(csr).read_bytes(), subject=subject,
                          secret=key_secrets(passphrase_file), actor=f"{_operator()}")
        der = issued.record.certificate
        if out:
            Path(out).write_bytes(issued.pem)
    record = ws.registration().enrol_officer(officer_id, office, name, list(roles), _operator(), certificate=der)
    info = {"id": record.id, "office": record.office, "roles": list(record.roles), "fingerprint": record.fingerprint}
    emit_json(info) if as_json else console.print(f"officer {record.id} enrolled at {record.office}", highlight=False)


@officer.command("codes")
@click.argument("officer_id")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the otpauth:// URI to this file (mode 0600), to hand to the officer.")
@click.option("--show", is_flag=True, help="Print the URI on the terminal instead (for the officer to load at once).")
@home_option
@json_option
def officer_codes(officer_id: str, out: str | None, show: bool, home: str, as_json: bool) -> None:
    """Enrol the officer's one-time codes (TOTP) for the office portal: a new secret, replacing
    any before, given once as an otpauth:// URI for the officer's authenticator app (load it
    there, or make it a QR code: `qrencode -t ansiutf8 < FILE`)."""
    import os

    if (out is None) == (not show):
        raise click.UsageError("give --out FILE (the URI in a file only you read) or --show (on this terminal), "
                               "one of them")
    uri = workspace(home).registration().enrol_one_time_codes(officer_id, _operator())
    if out:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a file that was there keeps no wider mode
        with os.fdopen(fd, "w") as f:
            f.write(uri + "\n")
        emit_json({"id": officer_id, "written_to": out}) if as_json else console.print(
            f"one-time codes of officer {officer_id} enrolled; the authenticator URI is in {out}", highlight=False)
    else:
        emit_json({"id": officer_id, "otpauth": uri}) if as_json else click.echo(uri)


@officer.command("remove")
@click.argument("officer_id")
@home_option
@json_option
def officer_remove(officer_id: str, home: str, as_json: bool) -> None:
    """Remove an officer: they can do nothing from now on (revoke their certificate too:
    `iranpki cert revoke`)."""
    record = workspace(home).registration().remove_officer(officer_id, _operator())
    emit_json({"id": record.id, "status": record.status}) if as_json else console.print(
        f"officer {record.id} removed", highlight=False)


@officer.command("list")
@click.option("--office", default=None)
@home_option
@json_option
def officer_list(office: str | None, home: str, as_json: bool) -> None:
    """Officers, of one office or of all."""
    officers = workspace(home).store.list_officers(office)
    if as_json:
        emit_json([{"id": o.id, "office": o.office, "name": o.name, "roles": list(o.roles), "status": o.status,
                    "fingerprint": o.fingerprint} for o in officers])
    else:
        table("registration officers", ["id", "office", "name", "roles", "status"],
              [[o.id, o.office, o.name, ", ".join(o.roles), o.status] for o in officers])


@ra.group()
def device() -> None:
    """Token and HSM models the lab approved: only those take keys at the desk."""


@device.command("approve")
@click.argument("attestation", type=click.Path(dir_okay=False, exists=True))
@click.option("--trust", "trust_files", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Root certificate(s) the lab's certificate chains to (default: the national root).")
@click.option("--chain", "chain_files", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="CA certificates between the lab's certificate and the root (repeatable).")
@home_option
@json_option
def device_approve(attestation: str, trust_files: tuple[str, ...], chain_files: tuple[str, ...], home: str,
                   as_json: bool) -> None:
    """Record a lab approval (the approval.p7m `iranpki conformance approve` writes), verified now."""
    trust = [Path(f).read_bytes() for f in trust_files] or None
    record = workspace(home).registration().record_device_approval(
        Path(attestation).read_bytes(), _operator(), trust_roots=trust,
        intermediates=[Path(f).read_bytes() for f in chain_files])
    info = {"approval_id": record.approval_id, "manufacturer": record.manufacturer, "model": record.model,
            "valid_until": iso(record.valid_until), "lab": record.lab}
    emit_json(info) if as_json else console.print(
        f"approved model recorded: {record.manufacturer} {record.model} until {when(record.valid_until)}", highlight=False)


@device.command("list")
@home_option
@json_option
def device_list(home: str, as_json: bool) -> None:
    """The recorded approvals."""
    records = workspace(home).store.device_approvals()
    if as_json:
        emit_json([{"approval_id": r.approval_id, "manufacturer": r.manufacturer, "model": r.model,
                    "valid_until": iso(r.valid_until), "lab": r.lab} for r in records])
    else:
        table("approved token models", ["manufacturer", "model", "valid until", "lab", "approval"],
              [[r.manufacturer, r.model, when(r.valid_until), r.lab, r.approval_id] for r in records])


@ra.group()
def evidence() -> None:
    """The identity evidence of requests: the scans, for an inspector, and their retention."""


@evidence.command("list")
@click.argument("request_id")
@home_option
@json_option
def evidence_list(request_id: str, home: str, as_json: bool) -> None:
    """The documents recorded for a request, and until when each is kept (the CP's archive period)."""
    ws = workspace(home)
    engine = ws.registration()
    record = ws.store.get_request(request_id)
    rows = [{"kind": e.kind, "number": e.number, "sha256": e.sha256, "media_type": e.media_type, "size": e.size,
             "officer": e.officer, "recorded_at": iso(e.at), "kept_until": iso(engine.evidence_kept_until(record, e))}
            for e in ws.store.list_evidence(request_id)]
    if as_json:
        emit_json(rows)
    else:
        table(f"evidence of request {request_id}", ["document", "number", "SHA-256", "size", "officer", "kept until"],
              [[r["kind"], r["number"], r["sha256"][:16] + "...", str(r["size"]), r["officer"], r["kept_until"][:10]]
               for r in rows])


@evidence.command("export")
@click.argument("request_id")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="A new folder for the scans.")
@home_option
@json_option
def evidence_export(request_id: str, out: str, home: str, as_json: bool) -> None:
    """Write a request's scans (named by their SHA-256) and evidence.json (the request's events,
    the documents, the proofing with the officer's signed statement) into a new folder."""
    import json
    import mimetypes

    ws = workspace(home)
    record = ws.store.get_request(request_id)
    folder = Path(out)
    folder.mkdir(mode=0o700, parents=True, exist_ok=False)
    documents = []
    for e in ws.store.list_evidence(request_id):
        name = e.sha256 + (mimetypes.guess_extension(e.media_type) or ".bin")
        data = ws.store.evidence_data(e.sha256)
        (folder / name).write_bytes(data)
        documents.append({"file": name, "kind": e.kind, "number": e.number, "sha256": e.sha256, "size": e.size,
                          "officer": e.officer, "recorded_at": iso(e.at)})
    from iranpki.ra import KEY_MATERIAL

    manifest = {"request": _request_info(record), "proofing": {k: v for k, v in record.proofing.items()
                                                              if k not in KEY_MATERIAL},
                "documents": documents,
                "events": [{"at": iso(e.at), "actor": e.actor, "office": e.office, "from": e.from_state,
                            "to": e.to_state, "details": e.details} for e in ws.store.request_events(request_id)]}
    (folder / "evidence.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2, default=str),
                                          encoding="utf-8")
    emit_json({"out": str(folder), "documents": len(documents)}) if as_json else console.print(
        f"{len(documents)} document(s) and evidence.json written to {folder}", highlight=False)


@evidence.command("purge")
@home_option
@json_option
def evidence_purge(home: str, as_json: bool) -> None:
    """Remove the scans whose retention has passed (the CP's archive period of their level), of
    requests no longer open. Audited with the number removed."""
    removed = workspace(home).registration().purge_evidence(_operator())
    emit_json({"removed": removed}) if as_json else console.print(f"{removed} document scan(s) removed",
                                                                   highlight=False)


def _request_info(r: RequestRecord) -> dict:
    return {"id": r.id, "kind": r.kind, "profile": r.profile, "level": r.level, "ca": r.ca, "state": r.state,
            "office": r.office, "subject": r.subject, "key_location": r.key_location,
            "serial": None if r.serial is None else f"{r.serial:x}", "created_at": iso(r.created_at),
            "expires_at": iso(r.expires_at)}


@ra.command("requests")
@click.option("--office", default=None, help="Only this office's requests.")
@click.option("--ca", default=None, help="Only requests to this CA.")
@click.option("--state", "states", multiple=True, type=click.Choice(list(STATES)), help="Only these states (repeatable).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@home_option
@json_option
def requests(office: str | None, ca: str | None, states: tuple[str, ...], limit: int, home: str, as_json: bool) -> None:
    """The request queue, oldest first."""
    found = workspace(home).store.list_requests(office=office, ca=ca, states=states or None, limit=limit)
    if as_json:
        emit_json([_request_info(r) for r in found])
    else:
        table("requests", ["id", "kind", "profile", "level", "CA", "state", "office", "expires"],
              [[r.id, r.kind, r.profile, str(r.level), r.ca, r.state, r.office or "-", when(r.expires_at)]
               for r in found])


@ra.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8443, show_default=True)
@click.option("--certificate", type=click.Path(dir_okay=False, exists=True), required=True,
              help="The server's TLS certificate (PEM; an ssl-server certificate, with its chain after it).")
@click.option("--key", type=click.Path(dir_okay=False, exists=True), required=True,
              help="The server's TLS private key (PEM). Not a CA key: no CA key is ever in this process.")
@click.option("--client-ca", "client_cas", type=click.Path(dir_okay=False, exists=True), required=True,
              help="The CA certificates (PEM) officers' client certificates are verified against.")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True)
@home_option
def serve(host: str, port: int, certificate: str, key: str, client_cas: str, threads: int, home: str) -> None:
    """Serve the RA's JSON API over HTTPS (OpenAPI 3.1 at /api/ra/openapi.json): applicants with
    their tracking code, officers with the client certificate on their token.

    \b
    Example:
      iranpki ra serve --certificate ra.pem --key ra.key --client-ca gica1.pem --port 8443
    """
    from iranpki_portals.serve import serve as run

    workspace(home).close()  # a workspace that cannot open fails here, with its message
    run(home, host=host, port=port, certificate=certificate, key=key, client_cas=client_cas, threads=threads,
        on_ready=lambda url: (click.echo(f"listening on {url}"), sys.stdout.flush()))


@ra.command("issue")
@click.option("--watch", is_flag=True, help="Keep going: look for approved requests every --interval seconds.")
@click.option("--interval", type=click.FloatRange(0.2, 3600), default=5.0, show_default=True)
@click.option("--passphrase-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Passphrase of software CA keys (else IRANPKI_KEY_PASSPHRASE or a prompt).")
@home_option
@json_option
def issue(watch: bool, interval: float, passphrase_file: str | None, home: str, as_json: bool) -> None:
    """The CA side: carry out the approved requests (issue, revoke, suspend, release, renew,
    re-key) with the CA keys, each certificate recorded with its request in one transaction.
    Runs where the CA keys are, never in a web process."""
    import json

    worker = workspace(home).ra_worker(key_secrets(passphrase_file))
    while True:
        done = worker.run_once()
        rows = [{"request": o.request, "serial": None if o.serial is None else f"{o.serial:x}",
                 "error": None if o.error is None else str(o.error)} for o in done]
        if as_json and not watch:
            emit_json(rows)
        for row in rows:
            if as_json and watch:
                click.echo(json.dumps(row, ensure_ascii=False))  # one line each, as they happen
            elif not as_json:
                console.print(f"request {row['request']}: " + (f"serial {row['serial']}" if row["error"] is None
                                                                else f"refused: {row['error']}"), highlight=False)
        if not watch:
            if any(o.error for o in done):
                raise click.exceptions.Exit(1)
            return
        time.sleep(interval)
