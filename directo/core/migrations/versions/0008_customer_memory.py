"""The customer's profile (how to say their name, standing notes, a revision for concurrent edits, when they were
forgotten), a search key for their name, and every change to it kept with who and when; indexes for what the
screen pop remembers of a customer (callbacks by customer, promises by the call they were made on; complaints by
customer are indexed since 0007)

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

from directo.core.models import name_key

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("name_key", sa.String(200), nullable=True))
        batch.add_column(sa.Column("say_as", sa.String(200), nullable=True))
        batch.add_column(sa.Column("notes", sa.Text(), nullable=True))
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("forgotten_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_customers_name_key", ["name_key"])
    connection = op.get_bind()
    named = connection.execute(sa.text("SELECT id, name FROM customers WHERE name IS NOT NULL")).all()
    for customer_id, name in named:
        connection.execute(sa.text("UPDATE customers SET name_key = :key WHERE id = :id"),
                           {"key": name_key(name), "id": customer_id})
    op.create_table(
        "customer_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("old", sa.Text(), nullable=True),
        sa.Column("new", sa.Text(), nullable=True),
    )
    op.create_index("ix_customer_changes_customer", "customer_changes", ["customer_id", "id"])
    # The memory reads what we owe a customer, the promises made on their calls and their complaints.
    op.create_index("ix_callbacks_customer_state", "callbacks", ["customer_id", "state"])
    op.create_index("ix_callbacks_origin_call", "callbacks", ["origin_call_id"])


def downgrade() -> None:
    for index, table in (("ix_callbacks_origin_call", "callbacks"), ("ix_callbacks_customer_state", "callbacks")):
        op.drop_index(index, table_name=table)
    op.drop_index("ix_customer_changes_customer", table_name="customer_changes")
    op.drop_table("customer_changes")
    with op.batch_alter_table("customers") as batch:
        batch.drop_index("ix_customers_name_key")
        for column in ("forgotten_at", "revision", "notes", "say_as", "name_key"):
            batch.drop_column(column)
