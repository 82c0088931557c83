"""Callbacks with a kind, an owner's exclusive window, what was promised and the complaint they serve; texts to
customers grouped into notices by topic and subject, no longer only a complaint's reference

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("callbacks") as batch:
        batch.add_column(sa.Column("kind", sa.String(24), nullable=False, server_default="call-back"))
        batch.add_column(sa.Column("exclusive_until", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("about", sa.Text(), nullable=True))
        batch.add_column(sa.Column("complaint_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("created_by", sa.String(64), nullable=True))
        batch.create_foreign_key("fk_callbacks_complaint", "complaints", ["complaint_id"], ["id"])
    # Callbacks queued before this kept their caller's previous agent to themselves for a few minutes after
    # queueing; by now that window has passed for all of them.
    op.execute("UPDATE callbacks SET exclusive_until = queued_at")
    with op.batch_alter_table("callbacks") as batch:
        batch.alter_column("exclusive_until", existing_type=sa.DateTime(), nullable=False)
    with op.batch_alter_table("sms_messages") as batch:
        batch.add_column(sa.Column("topic", sa.String(24), nullable=False, server_default="complaint-reference"))
        batch.add_column(sa.Column("subject_id", sa.Integer(), nullable=True))
        batch.alter_column("complaint_id", existing_type=sa.Integer(), nullable=True)
    op.execute("UPDATE sms_messages SET subject_id = complaint_id")
    with op.batch_alter_table("sms_messages") as batch:
        batch.alter_column("subject_id", existing_type=sa.Integer(), nullable=False)
        batch.create_index("ix_sms_messages_notice", ["topic", "subject_id"])


def downgrade() -> None:
    op.execute("DELETE FROM sms_messages WHERE complaint_id IS NULL")
    with op.batch_alter_table("sms_messages") as batch:
        batch.drop_index("ix_sms_messages_notice")
        batch.drop_column("subject_id")
        batch.drop_column("topic")
        batch.alter_column("complaint_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("callbacks") as batch:
        batch.drop_constraint("fk_callbacks_complaint", type_="foreignkey")
        for column in ("created_by", "complaint_id", "about", "exclusive_until", "kind"):
            batch.drop_column(column)
