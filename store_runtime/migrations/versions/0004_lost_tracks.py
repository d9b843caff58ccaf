"""Person tracks lost and found again: `tracks.lost_t`, when the tracker lost a track mid-floor
(store_runtime/sessions.py pairs it with a track found again there).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

Nullable: a store upgraded from an earlier revision has no track lost.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lost_t", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_column("lost_t")
