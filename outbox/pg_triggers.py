"""django-pgtrigger triggers whose ignore check costs no subtransaction.

pgtrigger starts every trigger function with `_pgtrigger_should_ignore(TG_NAME)`, which reads
the `pgtrigger.ignore` setting with `current_setting()` inside an exception block: the setting is
unset in nearly every session, so each firing raises and catches an error in a subtransaction.
That costs server CPU on every firing (docs/performance.md), and a message's write fires two
triggers (its event's NOTIFY trigger and the created-event guard). These triggers read the
setting with `missing_ok` instead and look at the array only when one is set, so
`pgtrigger.ignore()` works on them exactly as on pgtrigger's own.
"""

from __future__ import annotations

import pgtrigger
from django.db import models
from pgtrigger import compiler


class UpsertTriggerSql(compiler.UpsertTriggerSql):
    """pgtrigger's installation SQL with the ignore check inlined.

    Migrations reference this class, so its template is part of them: editing it changes what old
    migrations install. A new template goes in a new class, as pgtrigger versions its own.
    """

    def get_template(self) -> str:
        # pgtrigger.ignore() sets an array literal of trigger ids, and '' or '{}' when done.
        return """
            CREATE OR REPLACE FUNCTION {pgid}()
            RETURNS TRIGGER AS $$
                {declare}
                BEGIN
                    IF COALESCE(current_setting('pgtrigger.ignore', true), '') NOT IN ('', '{{}}') THEN
                        IF TG_NAME = ANY(current_setting('pgtrigger.ignore')::TEXT[]) THEN
                            IF (TG_OP = 'DELETE') THEN
                                RETURN OLD;
                            ELSE
                                RETURN NEW;
                            END IF;
                        END IF;
                    END IF;
                    {func}
                END;
            $$ LANGUAGE plpgsql;

            DROP TRIGGER IF EXISTS {pgid} ON {table};
            CREATE {constraint} TRIGGER {pgid}
                {when} {operation} ON {table}
                {timing}
                {referencing}
                FOR EACH {level} {condition}
                EXECUTE PROCEDURE {execute};

            COMMENT ON TRIGGER {pgid} ON {table} IS '{hash}';
        """


class Trigger(pgtrigger.Trigger):
    """A `pgtrigger.Trigger` installed with `UpsertTriggerSql`; declared and ignored the same way."""

    def compile(self, model: models.Model) -> compiler.Trigger:
        compiled = super().compile(model)
        return compiler.Trigger(name=compiled.name, sql=UpsertTriggerSql(**compiled.sql.kwargs))
