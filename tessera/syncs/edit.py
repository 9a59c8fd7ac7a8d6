"""Changing the syncs of a configuration: the whole configuration with one sync added or replaced,
ready for ``Workspace.apply`` (the web app's sync form and the REST API use it)."""

from __future__ import annotations

from typing import Any

from tessera.config.models import SyncConfig, WorkspaceConfig


def config_with_sync(config: WorkspaceConfig, sync: SyncConfig | dict[str, Any]) -> dict:
    """The configuration (as a mapping, secrets as their references) with ``sync`` added, or in
    place of the sync of the same name.

    Raises:
        pydantic.ValidationError: ``sync`` is not a valid sync.
    """
    new = sync if isinstance(sync, SyncConfig) else SyncConfig.model_validate(sync)
    data = config.model_dump(mode="json", exclude_defaults=True, by_alias=True)
    syncs = [s for s in data.get("syncs", []) if s["name"] != new.name]
    position = next((i for i, s in enumerate(config.syncs) if s.name == new.name), len(syncs))
    syncs.insert(position, new.model_dump(mode="json", exclude_defaults=True, by_alias=True))
    data["syncs"] = syncs
    return data
