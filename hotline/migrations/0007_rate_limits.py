from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('hotline', '0006_call_link')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RateLimit',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(max_length=160)),
                ('window_start', fields.BigIntField(db_index=True)),
                ('count', fields.IntField(default=0)),
            ],
            options={'table': 'rate_limit', 'app': 'hotline', 'unique_together': (('key', 'window_start'),), 'pk_attr': 'id', 'table_description': 'Uses of one public-page allowance in one window, shared by every web process.'},
            bases=['Model'],
        ),
    ]
