"""Managed identities of the emulated tenant and the data actions their roles grant.

Why: on an Entra-ID-protected disk a valid token is not enough; the identity needs the data action
of the resource kind, e.g. `Microsoft.Compute/snapshots/download/action`, which the built-in role
"Data Operator for Managed Disks" (959f8984-c045-4866-89c7-12bf9737be2e) grants together with the
disks' download and both upload actions ("Azure built-in roles", Compute). A test of a credential
without the role needs an identity without it, hence roles per identity.

The system-assigned identity (a token asked for without `client_id`) holds that role by default; a
user-assigned identity is any other client ID and holds nothing until `PUT /_emulator/identities/ID`
gives it roles or actions. Role assignments have no scope here: an identity holds an action for every
resource of the subscription. Object IDs are derived from the client ID, so they are stable across
restarts; assignments persist in `DIR/identities.json`.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_OPERATOR = "Data Operator for Managed Disks"
ROLE_ACTIONS = {
    DATA_OPERATOR: (
        "Microsoft.Compute/disks/download/action",
        "Microsoft.Compute/disks/upload/action",
        "Microsoft.Compute/snapshots/download/action",
        "Microsoft.Compute/snapshots/upload/action",
    ),
}  # "Azure built-in roles", Compute: the role's dataActions
ROLE_IDS = {"959f8984-c045-4866-89c7-12bf9737be2e": DATA_OPERATOR}  # a role may be named by its definition ID
_NAMESPACE = uuid.UUID("5b2a4c1e-7d0f-4a57-9a43-2d3c0e6b8f11")  # derives the emulator's stable IDs
SYSTEM_CLIENT_ID = str(uuid.uuid5(_NAMESPACE, "system-assigned"))


@dataclass(frozen=True)
class Identity:
    """One managed identity: its client ID, object ID, and the roles and single actions it holds."""

    client_id: str
    roles: tuple[str, ...]
    actions: tuple[str, ...]

    @property
    def object_id(self) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"object/{self.client_id.lower()}"))

    @property
    def system(self) -> bool:
        return self.client_id == SYSTEM_CLIENT_ID

    def allows(self, action: str) -> bool:
        granted = {a.lower() for role in self.roles for a in ROLE_ACTIONS[role]} | {
            a.lower() for a in self.actions
        }
        return action.lower() in granted  # Azure's action names are case-insensitive

    def as_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "object_id": self.object_id,
            "system": self.system,
            "roles": list(self.roles),
            "actions": list(self.actions),
        }


class Identities:
    """Role assignments by client ID, persisted in one small JSON file (rewritten on every change)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._assigned: dict[str, dict[str, list[str]]] = (
            json.loads(path.read_text()) if path.exists() else {}
        )

    def get(self, client_id: str | None) -> Identity:
        """The identity a token request or a token names (None: the system-assigned one)."""
        key = (client_id or SYSTEM_CLIENT_ID).lower()
        default = {"roles": [DATA_OPERATOR] if key == SYSTEM_CLIENT_ID else [], "actions": []}
        held = self._assigned.get(key, default)
        return Identity(key, tuple(held["roles"]), tuple(held["actions"]))

    def all(self) -> list[Identity]:
        """The system identity first, then every identity that has been given roles, by client ID."""
        return [self.get(None)] + [self.get(c) for c in sorted(self._assigned) if c != SYSTEM_CLIENT_ID]

    def assign(self, client_id: str, body: object) -> Identity:
        """Replace an identity's roles and actions from a control body; ValueError says what is wrong."""
        if not isinstance(body, dict) or set(body) - {"roles", "actions"}:
            raise ValueError('expected {"roles": [role names or IDs], "actions": [data actions]}')
        lists = {key: body.get(key, []) for key in ("roles", "actions")}
        for key, values in lists.items():
            if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
                raise ValueError(f"{key} must be a list of non-empty strings")
        roles = []
        for role in lists["roles"]:
            name = ROLE_IDS.get(role.lower(), role)
            if name not in ROLE_ACTIONS:
                raise ValueError(f"unknown role {role!r}: the emulator knows {', '.join(ROLE_ACTIONS)}")
            roles.append(name)
        self._assigned[client_id.lower()] = {"roles": roles, "actions": lists["actions"]}
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._assigned, indent=1))
        os.replace(temporary, self._path)
        return self.get(client_id)
