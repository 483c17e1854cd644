"""screening day: class lists of pseudonymous codes, a time zone, language and letter
text per school, follow-up notes
and the district's follow-up settings (issue 24)

Revision ID: 0003_screening_day
Revises: 0002_ingest_safety
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_screening_day"
down_revision = "0002_ingest_safety"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "class_codes",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=128), nullable=False),
        sa.Column("class_name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "code"),
    )
    op.create_index("ix_class_codes_class", "class_codes", ["site_id", "class_name", "position"])
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("time_zone", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("language", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("letter_text", sa.Text(), nullable=True))
    with op.batch_alter_table("follow_ups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
    op.create_table(
        "district_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("district_settings")
    with op.batch_alter_table("follow_ups", schema=None) as batch_op:
        batch_op.drop_column("note")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("letter_text")
        batch_op.drop_column("language")
        batch_op.drop_column("time_zone")
    op.drop_index("ix_class_codes_class", table_name="class_codes")
    op.drop_table("class_codes")
