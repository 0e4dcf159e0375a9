"""A CA operator's workspace: one folder holding the configuration, the store and software keys.

``iranpki init DIR`` makes one::

    DIR/iranpki.yaml      settings (store, PKCS#11 module, repository and OCSP URLs)
    DIR/iranpki.sqlite3   the store (certificates, CAs, revocations, audit log)
    DIR/keys/             encrypted software keys (level 1 only; CA keys belong on tokens)

Each operation a client offers is one method here, so the CLI and later the portals stay thin.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from cryptography.hazmat.primitives.serialization import (
    Encoding,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import ca as ca_mod
from .clock import Clock, SystemClock
from .der import problem
from .errors import ConfigError, NotFoundError
from .keys import (
    PASSPHRASE_ENV,
    KeyReference,
    KeySettings,
    KeySpec,
    Pkcs11KeyReference,
    SecretSource,
    SignatureScheme,
    Signer,
    SoftwareKeyReference,
    generate_software_key,
    open_signer,
    parse_key_reference,
)
from .names import check_file_label, check_text, inside
from .store import AuditEvent, CaRecord, CertificateRecord, KeyRecord, Store, open_store

if TYPE_CHECKING:
    from . import inputs, ocsp, ra, tsa, validation, verify

__all__ = ["CONFIG_NAME", "HOME_ENV", "Workspace", "WorkspaceConfig"]

CONFIG_NAME = "iranpki.yaml"
HOME_ENV = "IRANPKI_HOME"
MAX_KEY_FILE = ca_mod.MAX_KEY_FILE  # a certificate file given to find_certificate is read up to this


class LdapConfig(BaseModel):
    """Where the directory is (``iranpki ldap``, :mod:`iranpki.publish`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^ldaps?://[^\s]+$")
    base_dn: str = Field(min_length=1)
    bind_dn: str = Field(min_length=1)
    #: A file (relative to the workspace) whose first line is the bind password; else IRANPKI_LDAP_PASSWORD.
    password_file: str | None = None


class WorkspaceConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    #: A SQLite file (relative to the workspace) or a PostgreSQL URL (postgresql://USER@HOST:PORT/DB,
    #: no password in it): the store every node of the CA shares.
    store: str = "iranpki.sqlite3"
    #: A file whose first line is the PostgreSQL password (relative to the workspace), else the
    #: IRANPKI_STORE_PASSWORD environment variable.
    store_password_file: str | None = None
    keys_dir: str = "keys"
    pkcs11_module: str | None = Field(default=None, description="PKCS#11 module; default SoftHSM2")
    pkcs11_pin_files: dict[str, str] = Field(default_factory=dict,
                                             description="a file holding the user PIN, by token label")
    repository_url: str = Field(pattern=r"^https?://[^\s]+$")
    ocsp_url: str = Field(default="", pattern=r"^(https?://[^\s]+)?$")
    ra_rules: str | None = Field(default=None, description="the registration rules file (default: the shipped "
                                                            "policies/ra-rules.yaml), relative to the workspace")
    ldap: LdapConfig | None = Field(default=None, description="the LDAP directory the CA publishes to")
    identity_registry: str | None = Field(
        default=None, pattern=r"^(simulated:.+|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$",
        description="the identity registry for level-1 remote proofing: 'module:factory' (the real adapter) or "
                    "'simulated:FILE' (the simulated one, for tests and demos only)")


@dataclass
class Workspace:
    home: Path
    config: WorkspaceConfig
    clock: Clock
    _store: Store | None = None

    # ---- opening ----------------------------------------------------------------------------

    @classmethod
    def init(cls, home: str | os.PathLike[str], *, repository_url: str, ocsp_url: str = "",
             pkcs11_module: str | None = None, clock: Clock | None = None, store: str | None = None,
             store_password_file: str | None = None) -> Workspace:
        path = Path(home)
        if (path / CONFIG_NAME).exists():
            raise ConfigError(f"{path} is already an iranpki workspace ({CONFIG_NAME} exists); use it, or pick another folder")
        try:
            config = WorkspaceConfig(repository_url=repository_url, ocsp_url=ocsp_url, pkcs11_module=pkcs11_module,
                                     **({"store": store} if store else {}),
                                     store_password_file=store_password_file)
        except ValidationError as exc:
            raise ConfigError(f"invalid workspace settings: {_first_error(exc)}") from None
        # The workspace holds the store and the software keys: its owner's alone.
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        (path / config.keys_dir).mkdir(mode=0o700, exist_ok=True)
        os.chmod(path / config.keys_dir, 0o700)  # an existing folder too: it holds the software keys
        _write_yaml_atomically(path / CONFIG_NAME, config.model_dump())
        ws = cls(path, config, clock or SystemClock())
        try:
            ws._open_store(create=True).close()
        except BaseException:
            (path / CONFIG_NAME).unlink()  # no workspace that names a store it could not make
            raise
        return ws

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None, *, clock: Clock | None = None) -> Workspace:
        path = Path(home or os.environ.get(HOME_ENV) or ".")
        cfg = path / CONFIG_NAME
        if not cfg.exists():
            raise ConfigError(
                f"{path.resolve()} is not an iranpki workspace (no {CONFIG_NAME}); run `iranpki init DIR` "
                f"and pass --home DIR or set {HOME_ENV}"
            )
        try:
            config = WorkspaceConfig.model_validate(yaml.safe_load(cfg.read_text(encoding="utf-8")))
        except (ValidationError, yaml.YAMLError) as exc:
            raise ConfigError(f"{cfg} is not valid: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {cfg}: {exc.strerror}; run as the workspace's owner, or make the "
                              "file readable to this user") from None
        return cls(path, config, clock or SystemClock())

    @property
    def store_path(self) -> Path:
        """The SQLite store's file (a workspace whose store is a database server has none)."""
        if self.store_is_server:
            raise ConfigError(f"this workspace's store is the database {self.store_location}, not a file; this step "
                              "works on a SQLite store only")
        return self.home / self.config.store

    @property
    def store_is_server(self) -> bool:
        return self.config.store.startswith("postgresql://")

    @property
    def store_location(self) -> str:
        """Where the store is: the SQLite file, or the PostgreSQL URL (with no password)."""
        return self.config.store if self.store_is_server else str(self.home / self.config.store)

    def switch_store(self, url: str) -> None:
        """Make the workspace use the store at ``url`` from now on (``iranpki store migrate --switch``);
        the SQLite file stays where it is, untouched."""
        self.close()
        self.config = self.config.model_copy(update={"store": url})
        _write_yaml_atomically(self.home / CONFIG_NAME, self.config.model_dump())

    def _open_store(self, *, create: bool = False) -> Store:
        password_file = None
        if self.config.store_password_file:
            password_file = str(self.home / self.config.store_password_file)
        return open_store(self.store_location, clock=self.clock, create=create, password_file=password_file)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # ---- keys -------------------------------------------------------------------------------

    def generate_key(self, spec: KeySpec, *, label: str, token: str | None = None,
                     secret: SecretSource | None = None, actor: str = "iranpki", backup: bool = False) -> Signer:
        """Generate a key on ``token`` (PKCS#11) or, without a token, as an encrypted software key."""
        if self.store.read_only is not None:
            # Asked first: a key made now could not be recorded, and an unrecorded key is lost work.
            raise ConfigError(f"the store {self.store_location} is read-only ({self.store.read_only}); no key was "
                              "generated. Run on a writable disk as the workspace's owner")
        if token is not None:
            from .keys.pkcs11 import generate_keypair

            signer: Signer = generate_keypair(token, label, spec, module=self.config.pkcs11_module, pin=secret,
                                              backup=backup)
            backend = "pkcs11"
        else:
            check_file_label(label)
            path = inside(self.home / self.config.keys_dir, f"{label}.pem")
            signer = generate_software_key(spec, str(path), secret or SecretSource(env=PASSPHRASE_ENV, what="passphrase"))
            signer.reference = SoftwareKeyReference(str(path)).relative_to(self.home)
            backend = "software"
        reference = str(signer.reference)
        self.store.add_key(
            KeyRecord(reference, signer.reference.backend, str(spec), label, self.clock.now()),
            AuditEvent("key.generated", reference, actor, {"backend": backend, "algorithm": str(spec),
                                                                    "token": token}),
        )
        return signer

    @property
    def key_settings(self) -> KeySettings:
        """This machine's settings for opening keys, from the configuration: the workspace folder
        (relative software keys), the PKCS#11 module and the token PIN files."""
        return KeySettings(base=self.home, pkcs11_module=self.config.pkcs11_module,
                           pin_files=dict(self.config.pkcs11_pin_files))

    def key_reference(self, text: str | KeyReference) -> KeyReference:
        """The reference an operator's ``--key`` names, in the form a record keeps: a PKCS#11
        URI; a software key file relative to the current folder, or to the workspace (the form
        ``key generate``, ``key list`` and ``ca show`` print), or the label of a key in the
        workspace's key folder; made relative to the workspace when it lies inside it."""
        if isinstance(text, KeyReference):
            return text
        check_text(text, "key reference")
        if not text.startswith(("pkcs11:", "file:")) and not os.path.exists(text):
            if "/" in text:
                candidate = self.home / text
            else:
                candidate = self.home / self.config.keys_dir / (text if text.endswith(".pem") else text + ".pem")
            if candidate.exists():
                text = str(candidate)
        ref = parse_key_reference(text)
        if isinstance(ref, SoftwareKeyReference):
            ref = SoftwareKeyReference(os.path.abspath(ref.path)).relative_to(self.home)
        return ref

    def open_key(self, reference: str | KeyReference, secret: SecretSource | None = None) -> Signer:
        """Open the key an operator names (see :meth:`key_reference`)."""
        return open_signer(self.key_reference(reference), secret, self.key_settings)

    def open_recorded_key(self, reference: str, secret: SecretSource | None = None) -> Signer:
        """Open the key a record names (a CA's ``key_reference``): relative software keys are in
        the workspace; the module and PIN files come from the configuration. A record made by an
        earlier version may hold ``module-path`` or ``pin-source``; the configuration wins where
        it names one, so such a workspace too opens on a machine whose module lives elsewhere."""
        ref = parse_key_reference(reference)
        if isinstance(ref, Pkcs11KeyReference):
            ref = replace(ref, local=replace(
                ref.local, module_path=None if self.config.pkcs11_module else ref.local.module_path,
                pin_source=None if ref.token in self.config.pkcs11_pin_files else ref.local.pin_source))
        return open_signer(ref, secret, self.key_settings)

    def _check_key_settings(self, key: str | KeyReference) -> None:
        """Refuse a key URI whose module or PIN file contradicts the configuration, before the
        key is opened with them."""
        ref = self.key_reference(key)
        if isinstance(ref, Pkcs11KeyReference):
            self._key_settings_changes(ref, self.config)

    def _adopt_key_settings(self, key: str | KeyReference) -> None:
        """A key URI given with ``module-path`` or ``pin-source`` for a key a record will keep:
        the record keeps the key's name only, so this machine's part goes to the configuration,
        where the next opening of the record finds it. Done before the record is made, under a
        lock, on the configuration as the file holds it now; a setting that contradicts it is
        refused and nothing is written."""
        ref = self.key_reference(key)
        if not isinstance(ref, Pkcs11KeyReference) or not (ref.local.module_path or ref.local.pin_source):
            return
        import fcntl

        target = (self.home / CONFIG_NAME).resolve()  # a symlinked configuration: the file it names
        lock_path = self.home / ".iranpki.yaml.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            config = Workspace.open(self.home, clock=self.clock).config  # as the file holds it now
            changes = self._key_settings_changes(ref, config)
            if changes:
                _write_yaml_atomically(target, config.model_copy(update=changes).model_dump())
                config = config.model_copy(update=changes)
            self.config = config
        finally:
            os.close(fd)  # releases the lock

    def _key_settings_changes(self, ref: Pkcs11KeyReference, config: WorkspaceConfig) -> dict[str, object]:
        changes: dict[str, object] = {}
        where = self.home / CONFIG_NAME
        module = ref.local.module_path
        if module and os.path.realpath(module) != os.path.realpath(config.pkcs11_module or module):
            raise ConfigError(f"the key URI names the PKCS#11 module {module} but this workspace uses "
                              f"{config.pkcs11_module} (pkcs11_module in {where}); "
                              "one workspace uses one module: leave module-path out of the URI")
        if module and not config.pkcs11_module:
            changes["pkcs11_module"] = os.path.abspath(module)
        if ref.local.pin_source:
            pin_file = os.path.abspath(ref.local.pin_source_path())
            known = config.pkcs11_pin_files.get(ref.token)
            if known is not None and os.path.abspath(known) != pin_file:
                raise ConfigError(f"the key URI names the PIN file {pin_file} for token {ref.token!r} but this "
                                  f"workspace reads {known} (pkcs11_pin_files in {where}); "
                                  "change it there, or leave pin-source out of the URI")
            if known is None:
                changes["pkcs11_pin_files"] = {**config.pkcs11_pin_files, ref.token: pin_file}
        return changes

    # ---- CAs --------------------------------------------------------------------------------

    def create_root(self, name: str, key: str, subject: str, *, validity_days: int | None = None,
                    profile: str = "root", signature: str | None = None, secret: SecretSource | None = None,
                    actor: str = "iranpki", crl_shards: int = 1) -> ca_mod.CertificateAuthority:
        scheme = SignatureScheme.parse(signature) if signature else None
        self._check_key_settings(key)
        signer = self.open_key(key, secret)
        self._adopt_key_settings(key)
        return ca_mod.create_root(self.store, signer, name, ca_mod.parse_subject(subject),
                                  repository_url=self.config.repository_url, ocsp_url=self.config.ocsp_url,
                                  profile=profile, validity_days=validity_days, clock=self.clock, scheme=scheme,
                                  actor=actor, crl_shards=crl_shards)

    def create_intermediate(self, name: str, parent: str, level: int, key: str, subject: str, *,
                            validity_days: int | None = None, signature: str | None = None,
                            parent_secret: SecretSource | None = None, secret: SecretSource | None = None,
                            actor: str = "iranpki", crl_shards: int = 1,
                            purpose: str | None = None) -> ca_mod.CertificateAuthority:
        scheme = SignatureScheme.parse(signature) if signature else None
        issuer = self.open_ca(parent, parent_secret)
        self._check_key_settings(key)
        signer = self.open_key(key, secret)
        self._adopt_key_settings(key)
        ocsp = f"{self.config.ocsp_url.rstrip('/')}/{name}" if self.config.ocsp_url else ""
        return ca_mod.create_intermediate(issuer, signer, name, level, ca_mod.parse_subject(subject),
                                          ocsp_url=ocsp, validity_days=validity_days, scheme=scheme, actor=actor,
                                          crl_shards=crl_shards, purpose=purpose)

    def open_ca(self, name: str, secret: SecretSource | None = None) -> ca_mod.CertificateAuthority:
        record = self.store.get_ca(name)
        return ca_mod.CertificateAuthority(record, self.open_recorded_key(record.key_reference, secret), self.store,
                                           clock=self.clock)

    def chain(self, name: str) -> list[bytes]:
        """DER certificates from the CA ``name`` up to its root."""
        out = []
        record = self.store.get_ca(name)
        while True:
            out.append(record.certificate)
            if record.parent is None:
                return out
            record = self.store.get_ca(record.parent)

    # ---- certificates -----------------------------------------------------------------------

    def issue(self, ca: str, profile: str, *, csr: bytes | None = None, subject: str | None = None,
              public_key: bytes | None = None, dns: list[str] | None = None, ips: list[str] | None = None,
              emails: list[str] | None = None, validity_days: int | None = None,
              secret: SecretSource | None = None, actor: str = "iranpki",
              publish: bool = False) -> ca_mod.IssuedCertificate:
        """Issue from a CSR, or from a public key and subject fields; ``publish``: the subscriber
        agreed to its publication in the directory."""
        from dataclasses import replace as _replace

        from .profiles import load_profile

        prof = load_profile(profile)  # an unknown profile or CA fails before anything is parsed
        self.store.get_ca(ca)
        request = ca_mod.build_request(csr=csr, subject=subject, public_key=public_key, dns=dns, ips=ips,
                                       emails=emails, validity_days=validity_days)
        return self.open_ca(ca, secret).issue(prof, _replace(request, publish=publish), actor=actor)

    def revoke(self, serial: int, reason: str, *, invalidity_date: datetime | None = None,
               actor: str = "iranpki") -> CertificateRecord:
        return ca_mod.revoke(self.store, serial, reason, invalidity_date=invalidity_date, actor=actor, clock=self.clock)

    # ---- CRLs -------------------------------------------------------------------------------

    @property
    def crl_dir(self) -> Path:
        """Every CRL the workspace generated, kept by number (the register is in the store)."""
        return self.home / "crls"

    def crl_due(self, ca: str) -> str | None:
        """Why ``ca``'s complete CRLs are due now (see :func:`iranpki.crl.complete_crl_due`), or None."""
        from . import crl

        return crl.complete_crl_due(self.store, self.store.get_ca(ca), self.clock.now())

    def generate_crls(self, ca: str, *, delta: bool = False, shard: int | None = None,
                      secret: SecretSource | None = None, actor: str = "iranpki",
                      progress: Callable[[int], None] | None = None) -> list:
        """Generate the CRL (or delta CRL) of ``ca``: of one shard, or of every shard."""
        from . import crl

        record = self.store.get_ca(ca)
        if shard is not None and record.crl_shards == 1 and shard != 0:
            raise crl.CrlError(f"CA {ca!r} does not partition its CRL; leave out --shard (got {shard})")
        if shard is not None and record.crl_shards > 1 and not 0 <= shard < record.crl_shards:
            raise crl.CrlError(f"shard {shard} does not exist; CA {ca!r} has shards 0 to {record.crl_shards - 1}")
        signer = self.open_recorded_key(record.key_reference, secret)
        try:
            return crl.generate_crls(self.store, record, signer, self.crl_dir, delta=delta,
                                     shard=shard if record.crl_shards > 1 else None, clock=self.clock, actor=actor,
                                     progress=progress)
        finally:
            signer.close()

    def publish(self, repository: str | os.PathLike[str], cas: list[str] | None = None) -> list[tuple[str, str]]:
        from . import crl

        return crl.publish(self.store, repository, cas)

    # ---- OCSP -------------------------------------------------------------------------------

    def ocsp_service(self, cas: list[str], *, responder_key: str | None = None, signing: str = "pre-produced",
                     secret: SecretSource | None = None, responder_secret: SecretSource | None = None,
                     renew_responders: bool = True, include_ca_certificate: bool = False,
                     max_source_lag: float | None = None) -> ocsp.OcspService:
        """An OCSP service answering for ``cas``, signing with each CA's key or, given
        ``responder_key``, as a delegated responder with a certificate from each CA.

        ``renew_responders``: this process may issue and renew the responder certificates, so it
        opens the CA keys now (a wrong passphrase fails here, not days later at renewal). Without
        it the CA keys stay closed, and a CA with no current responder certificate is an error.
        """
        from . import ocsp

        records = [self.store.get_ca(name) for name in dict.fromkeys(cas)]
        opened: dict[KeyReference, Signer] = {}

        def key(reference: KeyReference, source: SecretSource | None) -> Signer:
            if reference not in opened:  # CAs sharing a key share one signer (one PKCS#11 login)
                opened[reference] = open_signer(reference, source, self.key_settings)
            return opened[reference]

        def issue_responder(name: str, subject: list[tuple[str, str]], public_key: object,
                            days: int) -> object:
            # The responder asks; the CA (opened here, with its key) issues the ocsp-signer certificate.
            record = self.store.get_ca(name)
            request = ca_mod.IssueRequest(subject=subject, public_key=public_key, validity_days=days)  # type: ignore[arg-type]
            return ca_mod.CertificateAuthority(record, ca_signer(record), self.store, clock=self.clock).issue(
                "ocsp-signer", request, actor="iranpki ocsp").record

        def ca_signer(record: CaRecord) -> Signer:
            return key(parse_key_reference(record.key_reference), secret)

        try:
            responder = key(self.key_reference(responder_key), responder_secret or secret) if responder_key else None
            if responder is not None and renew_responders:
                for record in records:  # opened now: a wrong passphrase fails here, not days later at renewal
                    ca_signer(record)
            from .store.postgresql import STANDBY

            copy = self.store.read_only == STANDBY  # a standby: it says how current it is
            store = self.store
            return ocsp.assemble_service(store, records, ca_signer=ca_signer, responder=responder,
                                         issue_responder=issue_responder if renew_responders and not copy else None,  # type: ignore[arg-type]
                                         signing=signing, include_ca_certificate=include_ca_certificate,
                                         clock=self.clock, max_source_lag=max_source_lag,
                                         source_as_of=(lambda: ocsp.store_clock(store)) if copy else None)
        except BaseException:
            for signer in opened.values():
                signer.close()
            raise

    def prepare_ocsp(self, cas: list[str], *, responder_key: str | None = None, everything: bool = False,
                     secret: SecretSource | None = None, responder_secret: SecretSource | None = None,
                     progress: Callable[[int], None] | None = None, include_ca_certificate: bool = False) -> int:
        """Sign the due pre-produced OCSP responses of ``cas`` once (all of them with ``everything``);
        return how many were signed. ``progress(signed)`` is called after each batch of 500."""
        service = self.ocsp_service(cas, responder_key=responder_key, secret=secret, responder_secret=responder_secret,
                                    include_ca_certificate=include_ca_certificate)
        try:
            return service.prepare(everything=everything, progress=progress)
        finally:
            service.close()

    def serve_ocsp(self, cas: list[str], *, host: str = "127.0.0.1", port: int = 8080, workers: int = 2,
                   responder_key: str | None = None, signing: str = "pre-produced",
                   secret: SecretSource | None = None, responder_secret: SecretSource | None = None,
                   request_timeout: float = 10.0, max_client_connections: int = 256,
                   max_refresher_silence: float = 30.0, on_ready: Callable[[str], None] | None = None,
                   include_ca_certificate: bool = False, max_source_lag: float | None = None) -> None:
        """Run the OCSP responder for ``cas`` until SIGTERM or SIGINT (see :mod:`iranpki.ocsp.server`);
        ``on_ready(url)`` is called once it answers; the pre-produced responses are signed meanwhile.
        On a standby (a replica of the store) it runs no refresher, and answers by how current its
        copy is (``max_source_lag``, at most the CP's; :class:`iranpki.ocsp.OcspService`)."""
        from .ocsp import server

        from .store.postgresql import STANDBY

        standby = self.store.read_only == STANDBY
        settings = server.ServerSettings(host=host, port=port, workers=workers, request_timeout=request_timeout,
                                         max_client_connections=max_client_connections,
                                         max_refresher_silence=max_refresher_silence, refresher=not standby)
        # Asked once here and remembered, so the processes forked below open their keys unasked.
        secret = server.RememberedSecret(secret) if secret is not None else None
        responder_secret = server.RememberedSecret(responder_secret) if responder_secret is not None else secret
        options = {"responder_key": responder_key, "signing": signing, "secret": secret,
                   "responder_secret": responder_secret, "include_ca_certificate": include_ca_certificate,
                   "max_source_lag": max_source_lag}
        # Opened once before any fork: an unknown CA, a wrong key or passphrase, or a missing
        # responder certificate (issued now) is reported here, with the command's exit status.
        self.ocsp_service(cas, **options).close()  # type: ignore[arg-type]
        self.close()  # a store connection must not cross a fork; each process opens its own
        home, clock = self.home, self.clock

        def open_service(refresher: bool) -> ocsp.OcspService:
            return Workspace.open(home, clock=clock).ocsp_service(cas, renew_responders=refresher, **options)  # type: ignore[arg-type]

        server.serve(open_service, settings, on_ready=on_ready)

    # ---- validation (relying party) ---------------------------------------------------------

    def trust_anchors(self) -> list[bytes]:
        """DER certificates of the workspace's root CAs: the trust anchors its operator validates against."""
        return [r.certificate for r in self.store.list_cas() if r.kind == "root"]

    def ca_certificates(self) -> list[bytes]:
        """DER certificates of the workspace's intermediate CAs, offered to chain building."""
        return [r.certificate for r in self.store.list_cas() if r.kind != "root"]

    def trust_roots(self, explicit: list[bytes] | None = None) -> list[bytes]:
        """The roots a relying party on this workspace trusts (:func:`iranpki.validation.relying_party_roots`):
        ``explicit`` ones, else the national root and this workspace's root CAs."""
        from . import validation

        return validation.relying_party_roots(explicit, self.trust_anchors())

    def validate_certificate(self, cert: inputs.CertificateInput, **options: object) -> validation.ValidationResult:
        """Validate ``cert`` as :func:`iranpki.validation.validate_certificate` does, trusting
        :meth:`trust_roots` (``trust_roots`` given replace them) and offering its CA certificates
        as intermediates (besides any given)."""
        from . import validation

        return validation.validate_certificate(cert, **self._relying_party(options))  # type: ignore[arg-type]

    def verify_file(self, data: bytes, **options: object) -> verify.FileVerification:
        """Verify a certificate or signed file as :func:`iranpki.verify.verify_file` does, trusting
        :meth:`trust_roots` (``trust_roots`` given replace them) and offering its CA certificates
        as intermediates (besides any given)."""
        from . import verify

        return verify.verify_file(data, **self._relying_party(options))  # type: ignore[arg-type]

    def _relying_party(self, options: dict[str, object]) -> dict[str, object]:
        """``options`` with this workspace's trust (given roots replace it) and CA certificates."""
        return {**options, "trust_roots": self.trust_roots(options.get("trust_roots")),  # type: ignore[arg-type]
                "intermediates": [*options.get("intermediates", ()), *self.ca_certificates()]}  # type: ignore[misc]

    # ---- registration -----------------------------------------------------------------------

    def registration(self) -> ra.RegistrationAuthority:
        """The registration engine over this workspace's store (no CA key: see :meth:`ra_worker`)."""
        from . import ra

        rules = None
        if self.config.ra_rules:
            rules = ra.load_rules(str(self.home / self.config.ra_rules))
        registry = None
        if self.config.identity_registry:
            registry = ra.load_registry(self.config.identity_registry, self.home)
        return ra.RegistrationAuthority(self.store, clock=self.clock, rules=rules, registry=registry)

    def ra_worker(self, secret: SecretSource | None = None, *, name: str = "ca-side") -> ra.RaWorker:
        """The CA side that carries out approved requests, opening each CA's key when first needed."""
        from . import ra

        return ra.RaWorker(self.registration(), lambda ca: self.open_ca(ca, secret), name=name,
                           recover_key=lambda archived, context: self.recover_archived_key(archived, context=context,
                                                                                       secret=secret))

    # ---- publishing to a directory ---------------------------------------------------------

    def ldap_publisher(self):  # noqa: ANN201 - an iranpki.publish.LdapPublisher
        """The publisher to the directory the settings name (``ldap:`` in iranpki.yaml)."""
        from .publish import LdapPublisher, ldap_password

        if self.config.ldap is None:
            raise ConfigError(f"no directory is set: add ldap: {{url, base_dn, bind_dn}} to {self.home / CONFIG_NAME}")
        cfg = self.config.ldap
        password = ldap_password(str(self.home / cfg.password_file) if cfg.password_file else None)
        return LdapPublisher(self.store, cfg.url, cfg.base_dn, cfg.bind_dn, password)

    # ---- subscribers' key recovery ----------------------------------------------------------

    def create_recovery_key(self, token: str, label: str, *, name: str | None = None, curve: str = "P-256",
                            secret: SecretSource | None = None, actor: str = "operator"):  # noqa: ANN201
        """Make the key-recovery key on ``token`` (EC, key agreement only, never extractable;
        :func:`iranpki.keys.escrow.generate_recovery_key`) and register it in the store: from now
        on the RA archives escrowed keys to it. Its :class:`~iranpki.store.RecoveryKeyRecord`."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        from .keys import escrow
        from .keys.uri import Pkcs11Uri
        from .store import RecoveryKeyRecord

        name = name or label
        check_file_label(name, "key-recovery key name")
        if any(k.name == name for k in self.store.recovery_keys()):
            raise ConfigError(f"a key-recovery key named {name!r} is registered already; choose another name")
        pin = secret.for_kind("PIN") if secret is not None else None
        if token in self.config.pkcs11_pin_files:
            pin = SecretSource(file=self.config.pkcs11_pin_files[token], what="user PIN")
        public = escrow.generate_recovery_key(token, label, curve=curve, module=self.config.pkcs11_module, pin=pin)
        record = RecoveryKeyRecord(name, str(Pkcs11Uri(token=token, object=label, type="private")),
                                   public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo), self.clock.now())
        self.store.add_recovery_key(record, AuditEvent("escrow.key.created", name, actor, {
            "key": record.key, "public_key_sha256": record.sha256, "curve": curve}))
        return record

    def recover_archived_key(self, archived: dict, *, context: str, secret: SecretSource | None = None) -> bytes:
        """Open an archived key (PKCS#8) with the key-recovery key it was archived to, on its token."""
        from .keys import escrow
        from .keys.reference import parse_key_reference

        wanted = archived.get("recovery_key_sha256")
        record = next((k for k in self.store.recovery_keys() if k.sha256 == wanted), None)
        if record is None:
            raise escrow.EscrowError(f"the key was archived to a key-recovery key this store does not know "
                                     f"(public key SHA-256 {str(wanted)[:16]}...); restore the store that registered "
                                     "it, or run where that key's token and registration are")
        token = parse_key_reference(record.key).uri.token  # type: ignore[attr-defined]
        pin = secret.for_kind("PIN") if secret is not None else None
        if token in self.config.pkcs11_pin_files:
            pin = SecretSource(file=self.config.pkcs11_pin_files[token], what="user PIN")
        return escrow.recover(archived, record.key, context=context, pin=pin, module=self.config.pkcs11_module)

    # ---- time-stamping ----------------------------------------------------------------------

    def tsa_authority(self, ca: str, key: str, *, certificate: str | None = None,
                      secret: SecretSource | None = None, serial_block: int = 100) -> tsa.TimeStampAuthority:
        """A time-stamp authority signing with ``key`` under its ``tsa``-profile certificate from
        CA ``ca`` (the newest valid one for the key, or the one whose serial is ``certificate``),
        numbering its stamps from the store counter ``tsa:<ca>`` in blocks of ``serial_block``."""
        from . import tsa

        signer = self.open_key(key, secret)
        try:
            serial = parse_serial(certificate) if certificate else None
            cert = tsa.find_tsa_certificate(self.store, ca, signer, self.clock.now(), serial)
            return tsa.TimeStampAuthority(signer, cert, tsa.SerialBlocks(self.store, f"tsa:{ca}", serial_block),
                                          clock=self.clock, chain=self.chain(ca)[:-1])
        except BaseException:
            signer.close()
            raise

    def serve_tsa(self, ca: str, key: str, *, certificate: str | None = None, host: str = "127.0.0.1",
                  port: int = 8080, workers: int = 2, secret: SecretSource | None = None,
                  request_timeout: float = 10.0, max_client_connections: int = 256,
                  on_ready: Callable[[str], None] | None = None) -> None:
        """Run the time-stamp authority until SIGTERM or SIGINT (see :mod:`iranpki.tsa.server`);
        ``on_ready(url)`` is called once every worker answers."""
        from .httpserve import RememberedSecret
        from .tsa import server

        settings = server.TsaSettings(host=host, port=port, workers=workers, request_timeout=request_timeout,
                                      max_client_connections=max_client_connections)
        # Asked once here and remembered, so the processes forked below open the key unasked.
        remembered = RememberedSecret(secret) if secret is not None else None
        # Opened once before any fork: an unknown CA, a wrong key, passphrase or certificate is
        # reported here, with the command's exit status.
        self.tsa_authority(ca, key, certificate=certificate, secret=remembered).close()
        self.close()  # a store connection must not cross a fork; each process opens its own
        home, clock = self.home, self.clock

        def open_authority() -> tsa.TimeStampAuthority:
            return Workspace.open(home, clock=clock).tsa_authority(ca, key, certificate=certificate, secret=remembered)

        server.serve(open_authority, settings, on_ready=on_ready)

    def certificate(self, serial: int) -> CertificateRecord:
        return self.store.get_certificate(serial)

    def find_certificate(self, text: str) -> CertificateRecord:
        """A certificate by its serial in hex (with or without colons or 0x), or by a PEM or DER
        file of the certificate itself (its serial, checked to be the stored certificate)."""
        if os.path.isfile(text):
            from cryptography import x509

            data = Path(text).read_bytes()[:MAX_KEY_FILE + 1]
            try:
                cert = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
                        else x509.load_der_x509_certificate(data))
            except ValueError as exc:
                raise NotFoundError(f"{text} is neither a serial number nor a certificate file ({problem(exc)})") from None
            record = self.store.get_certificate(cert.serial_number)
            if record.certificate != cert.public_bytes(Encoding.DER):
                raise NotFoundError(f"{text} has the serial {cert.serial_number:x} of a stored certificate but is "
                                    "not that certificate; it was not issued by this workspace")
            return record
        return self.store.get_certificate(parse_serial(text))


def parse_serial(text: str) -> int:
    t = text.strip().lower().replace(":", "")
    try:
        if t.startswith("0x"):
            return int(t[2:], 16)
        return int(t, 16)
    except ValueError:
        raise NotFoundError(f"{text!r} is not a serial number; give it in hex as `iranpki cert list` shows it") from None


def _write_yaml_atomically(target: Path, settings: dict[str, object]) -> None:
    """Write the settings file whole or not at all: a new file beside it (its mode that of the
    file it replaces, else what the umask gives a new file), flushed to disk, then renamed over it."""
    import tempfile

    text = "# iranpki workspace settings\n" + yaml.safe_dump(settings, sort_keys=False, allow_unicode=True)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        umask = os.umask(0o077)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(map(str, err['loc']))}: {err['msg']} (got {err.get('input')!r})"

