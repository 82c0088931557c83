"""agents.session_version (sessions end when it rises) and call_notes (every version of a call's notes)

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

import directo.core.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch_op:
        batch_op.add_column(sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "call_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("written_at", directo.core.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"]),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_call_notes_call_id", "call_notes", ["call_id"])
    # Notes written before versions were kept become each call's first version, by whoever the call was with.
    op.execute("INSERT INTO call_notes (call_id, agent_id, notes, written_at) "
               "SELECT id, agent_id, notes, COALESCE(ended_at, started_at) FROM calls WHERE notes IS NOT NULL")


def downgrade() -> None:
    op.drop_index("ix_call_notes_call_id", table_name="call_notes")
    op.drop_table("call_notes")
    with op.batch_alter_table("agents") as batch_op:
        batch_op.drop_column("session_version")
