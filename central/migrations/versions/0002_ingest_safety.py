"""ingest safety: result flags, quarantine kind, known sites, login throttling (issue 23)

Revision ID: 0002_ingest_safety
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_ingest_safety"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER TABLE ADD COLUMN inside every migration shape; PostgreSQL
    # runs the same as plain ALTERs
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flags", sa.String(length=128), nullable=True))
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=32), nullable=True))
    op.create_table(
        "sites",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("test", sa.Boolean(), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("site_id"),
    )
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    # Sites that already have results are known: upgrading must not start quarantining a
    # district's live schools as unknown_site.
    op.execute(
        "INSERT INTO sites (site_id, test, added_at, added_by) "
        "SELECT DISTINCT site_id, false, CURRENT_TIMESTAMP, 'migration 0002' FROM results"
    )


def downgrade() -> None:
    op.drop_table("login_throttle")
    op.drop_table("sites")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_column("kind")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_column("flags")
