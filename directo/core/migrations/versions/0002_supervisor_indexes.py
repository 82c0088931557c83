"""supervisor call log: filtered keyset pages ordered by (started_at, id)

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Each filter column followed by the log's sort key, so a filtered page is one index range scan in both databases.
INDEXES = {
    "ix_calls_agent_started_id": ["agent_id", "started_at", "id"],
    "ix_calls_caller_started_id": ["caller", "started_at", "id"],
    "ix_calls_outcome_started_id": ["outcome", "started_at", "id"],
}


# What they replace: the same columns without the id tie-breaker. Keeping both would only slow every insert.
REPLACED = {
    "ix_calls_agent_started": ["agent_id", "started_at"],
    "ix_calls_caller_started": ["caller", "started_at"],
    "ix_calls_outcome_started": ["outcome", "started_at"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "calls", columns)
    for name in REPLACED:
        op.drop_index(name, table_name="calls")


def downgrade() -> None:
    for name, columns in REPLACED.items():
        op.create_index(name, "calls", columns)
    for name in INDEXES:
        op.drop_index(name, table_name="calls")
