"""Make the history tables append-only in the database itself.

The model layer already refuses updates and deletes; the triggers make sure a
stray SQL statement or another tool cannot rewrite history either.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

TABLES = ("case_event", "phone_reveal")


def _statements(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS {t}_no_{op.lower()} BEFORE {op} ON {t} "
            f"BEGIN SELECT RAISE(ABORT, '{t} is append-only'); END"
            for t in TABLES
            for op in ("UPDATE", "DELETE")
        ]
    if dialect == "postgres":
        sql = [
            "CREATE OR REPLACE FUNCTION hotline_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation'; END $$ LANGUAGE plpgsql"
        ]
        for t in TABLES:
            sql.append(f"DROP TRIGGER IF EXISTS {t}_append_only ON {t}")
            sql.append(
                f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                "FOR EACH ROW EXECUTE FUNCTION hotline_append_only()"
            )
        return sql
    return []


async def forwards(apps, schema_editor) -> None:
    for sql in _statements(schema_editor.DIALECT):
        await schema_editor.client.execute_script(sql)


class Migration(migrations.Migration):
    dependencies = [("hotline", "0001_initial")]

    operations = [ops.RunPython(forwards, reverse_code=ops.RunPython.noop)]
