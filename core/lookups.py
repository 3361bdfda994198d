"""`field__in_constants=(...)`: an IN over fixed codes written into the SQL as literals.

SQLite uses a partial index (`WHERE status IN ('CONFIRMED', 'RESCHEDULING')`) only when it can
see, while preparing the statement, that the query's condition implies the index's, and a
bound parameter hides the values; Django binds every `__in`. With the codes in the text, the
lists that partial indexes serve walk them on SQLite too (PostgreSQL matches either way).

Only for code constants (status values): each must be letters, digits and underscores, so
quoting cannot be broken; anything else is refused.
"""

import re

from django.db.models import CharField, Lookup

_CODE = re.compile(r"^[A-Za-z0-9_]+$")


@CharField.register_lookup
class InConstants(Lookup):
    lookup_name = "in_constants"
    prepare_rhs = False

    def get_db_prep_lookup(self, value, connection):
        return "%s", []

    def as_sql(self, compiler, connection):
        codes = [str(code) for code in self.rhs]
        if not codes or not all(_CODE.match(code) for code in codes):
            raise ValueError(f"in_constants takes code constants only, not {self.rhs!r}.")
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} IN ({', '.join(repr(code) for code in codes)})", params
