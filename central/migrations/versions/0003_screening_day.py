"""screening day: class lists of pseudonymous codes, a time zone per school (issue 24)

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


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("time_zone")
    op.drop_index("ix_class_codes_class", table_name="class_codes")
    op.drop_table("class_codes")
