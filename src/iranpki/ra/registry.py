"""Automated identity inquiry (level-1 issuance with no visit): the adapter interface to the
civil registry (national code -> name, birth date, alive) and to mobile-number ownership, and a
**simulated** registry for tests and the demo. The real registries plug in behind the same
interface; nothing in iranpki treats the simulation as one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date

__all__ = ["IdentityRegistry", "Person", "SimulatedRegistry"]


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
