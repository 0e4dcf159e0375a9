"""`iranpki profile list|show`."""

from __future__ import annotations

import click
import yaml

from iranpki.profiles import list_profiles, load_profile

from .common import json_option
from .handling import HandledGroup
from .render import console, emit_json, table


@click.group(cls=HandledGroup)
def profile() -> None:
    """Certificate profiles (profiles/*.yaml).

    \b
    Example:
      iranpki profile list
      iranpki profile show personal-signature
    """


@profile.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the profiles.

    \b
    Example:
      iranpki profile list
    """
    profiles = list_profiles()
    if as_json:
        emit_json([{"name": p.name, "kind": p.kind, "level": p.level, "description": p.description,
                    "max_validity_days": p.max_validity_days} for p in profiles])
        return
    table("Certificate profiles", ["name", "kind", "level", "max validity (days)", "description"],
          [[p.name, p.kind, str(p.level or "-"), str(p.max_validity_days), p.description] for p in profiles])


@profile.command()
@click.argument("name")
@json_option
def show(name: str, as_json: bool) -> None:
    """Show one profile in full.

    \b
    Example:
      iranpki profile show ssl-server
      iranpki profile show personal-signature --json
    """
    p = load_profile(name)
    data = p.model_dump(mode="json")
    if as_json:
        emit_json(data)
    else:
        console.print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), highlight=False, markup=False)
