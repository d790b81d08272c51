"""Every table module, imported once so that ``Base.metadata`` knows the whole schema.

Add one import line here for a new table module.
"""

from ketaclinic.store import tables_treatment  # noqa: F401
from ketaclinic.store import tables_dosing  # noqa: F401
from ketaclinic.store import tables_mbc  # noqa: F401
from ketaclinic.store import tables_chair  # noqa: F401
from ketaclinic.store import tables_outcomes  # noqa: F401
from ketaclinic.store.tables import Base

__all__ = ["Base"]
