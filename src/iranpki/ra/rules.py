"""The registration rules as data (``policies/ra-rules.yaml``), checked against the national CP.

A level accepts the CP's identity proofing methods ranked at or above its own, and the key
locations whose storage the CP ranks at or above its own; the rules file adds what the CP does
not say (documents, approvals, expiry, changes of a certificate) and may not weaken it: a rules
file that lets a key location below the CP's storage for a level, or fewer than two approving
officers at levels 3 and 4, is refused when it loads.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import ConfigError
from ..policy import CertificatePolicy, load_policy, load_rules_file

#: Where a key is made by the RA itself, so that it can be archived before it is handed out.
ESCROW_KEY_LOCATIONS = ("software-pkcs12",)

__all__ = ["ESCROW_KEY_LOCATIONS", "Approvals", "ChangeRule", "KeyLocation", "LevelRule", "ProfileRule", "RaRules", "load_rules"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KeyLocation(_Frozen):
    id: str
    storage: str
    text: str


class Approvals(_Frozen):
    count: int = Field(ge=0, le=4)
    roles: tuple[str, ...]


class LevelRule(_Frozen):
    level: int = Field(ge=1, le=4)
    documents: tuple[str, ...]
    approvals: Approvals
    remote_approvals: int | None = Field(default=None, ge=0, le=4)
    request_expiry_days: int = Field(ge=1, le=365)
    approval_expiry_days: int = Field(ge=1, le=365)


class ProfileRule(_Frozen):
    key_locations: tuple[str, ...]
    documents: tuple[str, ...] = ()


class ChangeRule(_Frozen):
    proofing: tuple[str, ...]
    approvals: int = Field(ge=0, le=4)
    new_key: bool | None = None
    #: The levels at which the subscriber may ask with no visit, by signing the request with the
    #: key of the (valid) certificate it concerns (``signed-with-current-key`` in ``proofing``).
    current_key_levels: tuple[int, ...] = ()

    @model_validator(mode="after")
    def _current_key(self) -> ChangeRule:
        if self.current_key_levels and "signed-with-current-key" not in self.proofing:
            raise ValueError("current_key_levels needs signed-with-current-key among the proofing methods")
        if any(not 1 <= n <= 4 for n in self.current_key_levels):
            raise ValueError(f"current_key_levels {list(self.current_key_levels)}: levels are 1 to 4")
        return self


class LookupRule(_Frozen):
    failures_per_window: int = Field(ge=1, le=100)
    window_minutes: int = Field(ge=1, le=1440)
    #: Registrations (new requests, change requests) one client address may make in the window.
    registrations_per_window: int = Field(default=30, ge=1, le=1_000_000)


class RaRules(_Frozen):
    version: str
    source: str
    key_locations: tuple[KeyLocation, ...]
    documents: tuple[str, ...]
    roles: tuple[str, ...]
    levels: tuple[LevelRule, ...]
    profiles: dict[str, ProfileRule]
    changes: dict[str, ChangeRule]
    lookup: LookupRule

    @model_validator(mode="after")
    def _references(self) -> RaRules:
        locations = {k.id for k in self.key_locations}
        if sorted(r.level for r in self.levels) != [1, 2, 3, 4]:
            raise ValueError("levels must hold levels 1, 2, 3 and 4 once each")
        for r in self.levels:
            for d in r.documents:
                if d not in self.documents:
                    raise ValueError(f"level {r.level} names the document {d!r}, which is not in documents")
            for role in r.approvals.roles:
                if role not in self.roles:
                    raise ValueError(f"level {r.level} names the role {role!r}, which is not in roles")
            if r.level >= 3 and r.approvals.count < 2:
                raise ValueError(f"level {r.level} needs two approving officers (dual control), not {r.approvals.count}")
            if r.remote_approvals is not None and r.level >= 3 and r.remote_approvals < 2:
                raise ValueError(f"level {r.level} needs two approving officers (dual control); its remote_approvals "
                                 f"is {r.remote_approvals}")
        for name, p in self.profiles.items():
            for loc in p.key_locations:
                if loc not in locations:
                    raise ValueError(f"profile {name!r} names the key location {loc!r}, which is not in key_locations")
            for d in p.documents:
                if d not in self.documents:
                    raise ValueError(f"profile {name!r} names the document {d!r}, which is not in documents")
        unknown = set(self.changes) - {"revoke", "suspend", "release", "renew", "rekey", "recover"}
        if unknown:
            raise ValueError(f"changes names {sorted(unknown)}; a change is revoke, suspend, release, renew, rekey or "
                             "recover")
        if "recover" in self.changes and self.changes["recover"].current_key_levels:
            raise ValueError("changes.recover: a recovery is always proofed in person; remove current_key_levels")
        return self

    def level(self, n: int) -> LevelRule:
        for r in self.levels:
            if r.level == n:
                return r
        raise ConfigError(f"assurance level {n} does not exist; must be 1, 2, 3 or 4")

    def profile(self, name: str) -> ProfileRule:
        rule = self.profiles.get(name)
        if rule is None:
            raise ConfigError(f"profile {name!r} is not issued through registration offices; the RA issues "
                              f"{', '.join(sorted(self.profiles))}")
        return rule

    def key_location(self, location_id: str) -> KeyLocation:
        for k in self.key_locations:
            if k.id == location_id:
                return k
        raise ConfigError(f"key location {location_id!r} does not exist; must be one of "
                          f"{', '.join(k.id for k in self.key_locations)}")

    def allowed_key_locations(self, profile: str, level: int, cp: CertificatePolicy) -> tuple[str, ...]:
        """The key locations ``profile`` allows at ``level``: the profile's, whose CP storage is
        ranked at or above the storage the level asks for."""
        need = cp.key_storage(cp.level(level).keys.storage).rank
        return tuple(loc for loc in self.profile(profile).key_locations
                     if cp.key_storage(self.key_location(loc).storage).rank >= need)

    def accepted_proofing(self, level: int, cp: CertificatePolicy) -> tuple[str, ...]:
        """The CP's proofing methods that satisfy ``level``: ranked at or above its own."""
        need = cp.identity_method(cp.level(level).identity_proofing).rank
        return tuple(m.id for m in cp.identity_proofing_methods if m.rank >= need)

    def documents_for(self, profile: str, level: int) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.level(level).documents, *self.profile(profile).documents]))

    def check_against(self, cp: CertificatePolicy) -> None:
        """Refuse rules that name a storage the CP does not know."""
        known = {m.id for m in cp.key_storages}
        for r in self.levels:
            if r.remote_approvals is not None and "automated-inquiry" not in self.accepted_proofing(r.level, cp):
                raise ConfigError(f"level {r.level} sets remote_approvals, but the CP does not accept automated "
                                  f"inquiry at level {r.level}; remove it (a level {r.level} request needs a visit)")
        for k in self.key_locations:
            if k.storage not in known:
                raise ConfigError(f"key location {k.id!r} counts as storage {k.storage!r}, which the CP does not "
                                  f"know; the CP's storages are {', '.join(sorted(known))}")
        self._check_recovery(cp)

    def _check_recovery(self, cp: CertificatePolicy) -> None:
        """Escrowed profiles (the CP's key_recovery) are encryption-only, their keys made where the
        RA can archive them, and a recovery takes at least the approvals and proofing the CP asks."""
        from ..profiles import load_profile

        recovery = cp.key_recovery
        if recovery is None:
            if "recover" in self.changes:
                raise ConfigError("changes.recover is set, but the CP archives no key (no key_recovery); remove it")
            return
        for name in recovery.profiles:
            usages = {u for kind in ("rsa", "ec") for u in load_profile(name).key_usage.for_key(kind)}
            if usages & {"digitalSignature", "contentCommitment"}:
                raise ConfigError(f"the CP archives the keys of profile {name!r}, which allows signatures "
                                  f"({', '.join(sorted(usages))}); a signature key is never archived")
            rule = self.profiles.get(name)
            if rule is not None and set(rule.key_locations) - set(ESCROW_KEY_LOCATIONS):
                raise ConfigError(f"profile {name!r} is archived for recovery, so its key is made where the RA "
                                  f"archives it ({', '.join(ESCROW_KEY_LOCATIONS)}); not "
                                  f"{', '.join(sorted(set(rule.key_locations) - set(ESCROW_KEY_LOCATIONS)))}")
        change = self.changes.get("recover")
        if change is None:
            raise ConfigError("the CP archives keys (key_recovery), but changes.recover does not say how one is "
                              "recovered; add it")
        if change.approvals < recovery.approvals:
            raise ConfigError(f"changes.recover asks {change.approvals} approvals; the CP's key_recovery asks "
                              f"{recovery.approvals}")
        need = cp.identity_method(recovery.proofing).rank
        weak = [m for m in change.proofing if m not in {x.id for x in cp.identity_proofing_methods}
                or cp.identity_method(m).rank < need]
        if weak:
            raise ConfigError(f"changes.recover accepts {', '.join(weak)}; the CP's key_recovery asks at least "
                              f"{recovery.proofing}")


def load_rules(path: str | None = None, policy: CertificatePolicy | None = None) -> RaRules:
    """The registration rules from ``path``, or those shipped with iranpki, checked against the CP."""
    rules = _load(path)
    rules.check_against(policy or load_policy())
    return rules


@lru_cache(maxsize=4)
def _load(path: str | None) -> RaRules:
    return load_rules_file(RaRules, path, "ra-rules.yaml", "set of registration rules")
