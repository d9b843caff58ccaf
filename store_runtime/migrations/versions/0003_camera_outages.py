"""Camera outages: each outage a camera node reported (stalled or disconnected, start and end), and
each camera's newest reported status.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Written out in full (not derived from the models at run time): a revision must build the same
tables forever, whatever the models become. Two new tables and nothing changed in the old ones, so
a store upgraded from 0002 keeps every session as it was, with no outage on record.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "camera_outages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("camera", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("start_t", sa.Float(), nullable=False),
        sa.Column("end_t", sa.Float(), nullable=True),
        sa.Column("reconnects", sa.Integer(), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("reported_t", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_camera_outages")),
    )
    with op.batch_alter_table("camera_outages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_camera_outages_camera"), ["camera"], unique=False)
        batch_op.create_index(batch_op.f("ix_camera_outages_start_t"), ["start_t"], unique=False)

    op.create_table(
        "camera_states",
        sa.Column("camera", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("lag_s", sa.Float(), nullable=True),
        sa.Column("reconnects", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("camera", name=op.f("pk_camera_states")),
    )


def downgrade() -> None:
    op.drop_table("camera_states")
    with op.batch_alter_table("camera_outages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_camera_outages_start_t"))
        batch_op.drop_index(batch_op.f("ix_camera_outages_camera"))

    op.drop_table("camera_outages")
