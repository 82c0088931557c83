"""calls.from_raw holds up to 255 characters: a SIP caller's From can be longer than 64

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite does not enforce VARCHAR lengths; rebuilding a large calls table there would gain nothing.
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("calls", "from_raw", type_=sa.String(255), existing_type=sa.String(64))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("UPDATE calls SET from_raw = LEFT(from_raw, 64)")
        op.alter_column("calls", "from_raw", type_=sa.String(64), existing_type=sa.String(255))
