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
