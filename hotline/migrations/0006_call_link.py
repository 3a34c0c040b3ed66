from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('hotline', '0005_channels')]

    initial = False

    operations = [
        ops.AddField(
            model_name='CallLog',
            name='peer',
            field=fields.ForeignKeyField('hotline.CallLog', source_field='peer_id', null=True, db_constraint=True, to_field='id', related_name='legs', on_delete=OnDelete.SET_NULL),
        ),
    ]
