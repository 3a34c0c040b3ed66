"""Rules every model must keep."""

from tortoise import Tortoise, fields

from hotline.db import MODEL_MODULES


def _models():
    import importlib

    from tortoise.models import Model

    for module_name in MODEL_MODULES:
        module = importlib.import_module(module_name)
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Model) and obj.__module__ == module_name:
                if not getattr(obj._meta, "abstract", False):
                    yield obj


def test_model_docstrings_hold_no_semicolon():
    # tortoise writes docstrings into the schema as table comments, and its SQLite
    # migration runner splits scripts on ";" (a docstring with one breaks migrate).
    offenders = [m.__name__ for m in _models() if ";" in (m.__doc__ or "")]
    assert offenders == []


def test_every_foreign_key_says_what_happens_on_delete(app):
    for model in Tortoise.apps["hotline"].values():
        for name, field in model._meta.fields_map.items():
            if isinstance(field, fields.relational.ForeignKeyFieldInstance):
                assert field.on_delete in ("RESTRICT", "SET NULL"), f"{model.__name__}.{name}: {field.on_delete}"


async def _indexed_columns(table: str) -> set[tuple[str, ...]]:
    """Column tuples that lead some index of the table in the migrated database."""
    from tortoise import connections

    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        rows = await conn.execute_query_dict(
            "SELECT array_agg(a.attname ORDER BY k.ord) AS cols FROM pg_index i "
            "JOIN pg_class t ON t.oid = i.indrelid "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
            "WHERE t.relname = $1 GROUP BY i.indexrelid", [table])
        return {tuple(r["cols"]) for r in rows}
    found = set()
    for index in await conn.execute_query_dict(f'PRAGMA index_list("{table}")'):
        cols = await conn.execute_query_dict(f'PRAGMA index_info("{index["name"]}")')
        found.add(tuple(c["name"] for c in sorted(cols, key=lambda c: c["seqno"])))
    return found


async def test_every_index_the_models_ask_for_exists_after_migrating(app):
    # tortoise's AddField ignores db_index, so an index can be declared and
    # never built; the sweep's claim would then scan the whole case table.
    missing = []
    for model in Tortoise.apps["hotline"].values():
        table = model._meta.db_table
        wanted = {
            (field.source_field or name,)
            for name, field in model._meta.fields_map.items()
            if (field.index or field.unique) and not field.pk and not isinstance(field, fields.relational.RelationalField)
        }
        for index in model._meta.indexes or ():
            cols = index.fields if hasattr(index, "fields") else index
            wanted.add(tuple(cols))
        have = await _indexed_columns(table)
        missing += [f"{table}{cols}" for cols in wanted if not any(h[: len(cols)] == cols for h in have)]
    assert sorted(missing) == []
