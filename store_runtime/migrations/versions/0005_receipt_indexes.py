"""Indexes for reads the console makes all day and the retention purge makes hourly:
`sessions (exited_t, id)` (the recent receipts, the last to leave first, ties by id),
`sessions (customer, exited_t, id)` (one customer's receipts, in the same order) and
`camera_outages.end_t` (ended outages past tracking retention).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

Without them each read sorts or scans the whole table: a page open all day would cost more every
hour the store is open.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index("ix_sessions_exited_t_id", ["exited_t", "id"], unique=False)
        batch_op.create_index("ix_sessions_customer_exited_t_id", ["customer", "exited_t", "id"], unique=False)
    with op.batch_alter_table("camera_outages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_camera_outages_end_t"), ["end_t"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("camera_outages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_camera_outages_end_t"))
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_customer_exited_t_id")
        batch_op.drop_index("ix_sessions_exited_t_id")
