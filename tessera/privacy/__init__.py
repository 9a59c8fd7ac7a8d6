"""Privacy: erase or export one customer everywhere, the suppression list, consent history.

- :mod:`tessera.privacy.erase` erases a customer (by ``tessera_id`` or any identity value) from
  published datasets, raw batches, archived files, collected events, segments and consent
  history, and writes a receipt into the audit log;
- :mod:`tessera.privacy.suppression` keeps salted hashes of erased identifiers, and drops the
  matching rows wherever data comes in;
- :mod:`tessera.privacy.export` gathers everything held on a customer (JSON, or a zip of CSV);
- :mod:`tessera.privacy.consent` records consent per channel from sources and events, with its
  history, and gives syncs the current state.

The Workspace facade calls these; the sync state and the event log are reached through hooks the
caller passes (their packages sit beside or above this one).
"""

from tessera.privacy.consent import CHANNELS, CONSENT_EVENT, HISTORY
from tessera.privacy.erase import Erasure, erase, find_customer
from tessera.privacy.suppression import SUPPRESSED

__all__ = ["CHANNELS", "CONSENT_EVENT", "HISTORY", "SUPPRESSED", "Erasure", "erase", "find_customer"]
