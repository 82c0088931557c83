"""The life of a complaint: its state, its owner, its due date, the resolution, how the customer was told and
their verdict on the remedy

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Complaints flagged before this revision are due by the law's 15 days (COMPLAINT_RESOLUTION_DAYS' default).
LEGAL_DAYS = 15
TEXTS = ("explanation", "remedy", "cause", "answer_note", "verdict_note")
WHO = ("resolved_by", "told_by", "verified_by")
TIMES = ("first_told_at", "told_at", "verified_at", "closed_at", "reopened_at")


def upgrade() -> None:
    with op.batch_alter_table("complaints") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="received"))
        batch.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("due_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("first_due_at", sa.DateTime(), nullable=True))
        for name in TEXTS:
            batch.add_column(sa.Column(name, sa.Text(), nullable=True))
        for name in WHO:
            batch.add_column(sa.Column(name, sa.String(64), nullable=True))
        for name in TIMES:
            batch.add_column(sa.Column(name, sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("told_via", sa.String(8), nullable=True))
        batch.add_column(sa.Column("remedy_accepted", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("satisfied", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("reopened_count", sa.Integer(), nullable=False, server_default="0"))
        batch.create_foreign_key("fk_complaints_owner", "agents", ["owner_id"], ["id"])
    due = (f"datetime(flagged_at, '+{LEGAL_DAYS} days')" if op.get_bind().dialect.name == "sqlite"
           else f"flagged_at + interval '{LEGAL_DAYS} days'")
    # Nobody owned a complaint before: the agent who flagged it does now. resolved_at was never written.
    op.execute(f"UPDATE complaints SET owner_id = agent_id, due_at = {due}, first_due_at = {due}")
    with op.batch_alter_table("complaints") as batch:
        batch.alter_column("due_at", existing_type=sa.DateTime(), nullable=False)
        batch.alter_column("first_due_at", existing_type=sa.DateTime(), nullable=False)
        batch.create_index("ix_complaints_customer_state", ["customer_id", "state"])
        batch.create_index("ix_complaints_state_due", ["state", "due_at"])


def downgrade() -> None:
    with op.batch_alter_table("complaints") as batch:
        batch.drop_index("ix_complaints_state_due")
        batch.drop_index("ix_complaints_customer_state")
        batch.drop_constraint("fk_complaints_owner", type_="foreignkey")
        for name in ("reopened_count", "satisfied", "remedy_accepted", "told_via", *TIMES, *WHO, *TEXTS,
                     "first_due_at", "due_at", "owner_id", "state"):
            batch.drop_column(name)
