"""Automated identity inquiry (level-1 issuance with no visit): the adapter interface to the
civil registry (national code -> name, birth date, alive) and to mobile-number ownership, and a
**simulated** registry for tests and the demo. The real registries plug in behind the same
interface; nothing in iranpki treats the simulation as one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date
from pathlib import Path

__all__ = ["IdentityRegistry", "Person", "SimulatedRegistry", "load_registry"]


@dataclass(frozen=True)
class Person:
    national_code: str
    given_name: str
    surname: str
    birth_date: date
    alive: bool = True


class IdentityRegistry(ABC):
    """What the RA asks the national registries."""

    #: Named in every request event the registry proofs, so an inspector sees which answered.
    name: str

    @abstractmethod
    def person(self, national_code: str) -> Person | None:
        """The civil registry's record of ``national_code``, or None."""

    @abstractmethod
    def mobile_owned_by(self, mobile: str, national_code: str) -> bool:
        """Whether the mobile operators register ``mobile`` to ``national_code``."""


class SimulatedRegistry(IdentityRegistry):
    """A SIMULATED civil registry and mobile-ownership service, holding only what it is given.
    For tests and the demo; it proves nobody's identity."""

    name = "simulated-registry"

    def __init__(self, people: list[Person] | None = None, mobiles: dict[str, str] | None = None):
        self._people = {p.national_code: p for p in people or []}
        self._mobiles = dict(mobiles or {})

    def person(self, national_code: str) -> Person | None:
        return self._people.get(national_code)

    def mobile_owned_by(self, mobile: str, national_code: str) -> bool:
        return self._mobiles.get(mobile) == national_code


def load_registry(spec: str, home: str | Path = ".") -> IdentityRegistry:
    """The registry a workspace names (``identity_registry`` in iranpki.yaml): ``module:factory``,
    a callable returning the real adapter, or ``simulated:FILE``, a YAML file (relative to
    ``home``) of ``people`` (national_code, given_name, surname, birth_date, alive) and
    ``mobiles`` (number: national code) for the simulated one."""
    import importlib

    import yaml
    from pydantic import BaseModel, ConfigDict, ValidationError

    from ..errors import ConfigError

    if spec.startswith("simulated:"):
        class _Entry(BaseModel):
            model_config = ConfigDict(extra="forbid")
            national_code: str
            given_name: str
            surname: str
            birth_date: date
            alive: bool = True

        class _File(BaseModel):
            model_config = ConfigDict(extra="forbid")
            people: list[_Entry] = []
            mobiles: dict[str, str] = {}

        path = Path(home) / spec.removeprefix("simulated:")
        try:
            data = _File.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        except OSError as exc:
            raise ConfigError(f"cannot read the simulated registry {path}: {exc.strerror}; identity_registry in "
                              "iranpki.yaml names it") from None
        except (ValidationError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path} is not a simulated registry (people: [...], mobiles: {{...}}): {exc}") from None
        return SimulatedRegistry([Person(**e.model_dump()) for e in data.people], data.mobiles)
    module, _, factory = spec.partition(":")
    try:
        made = getattr(importlib.import_module(module), factory)()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"identity_registry {spec!r} cannot be loaded ({exc}); install the adapter's package or "
                          "correct the name in iranpki.yaml") from None
    if not isinstance(made, IdentityRegistry):
        raise ConfigError(f"identity_registry {spec!r} made a {type(made).__name__}, not an IdentityRegistry")
    return made
