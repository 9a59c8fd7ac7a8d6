"""Guided setup: a workspace configuration proposed from a folder of exports.

:func:`propose_config` reads every file, profiles it in the engine and proposes sources (one per
file or dated series), their format details, entities, record keys, normalization rules and
relations, then the datasets per entity with identity keys, merge rules and scores. Every choice
carries its evidence as a YAML comment; what the data does not settle is listed as a doubt.
"""

from tessera.setup.propose import Proposal, propose_config

__all__ = ["Proposal", "propose_config"]
