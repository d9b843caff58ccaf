"""Privacy: consent records, stopped tracks and discarded events, the hash-chained privacy audit
log, and the sessions' privacy marks (tracking stopped, tracking data detached).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Written out in full (not derived from the models at run time): a revision must build the same
tables forever, whatever the models become. The new session columns are nullable, so a store
upgraded from 0001 keeps every session as it was (nothing stopped, nothing detached).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("notice_version", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("given_t", sa.Float(), nullable=True),
        sa.Column("withdrawn_t", sa.Float(), nullable=True),
        sa.Column("withdrawn_method", sa.String(length=16), nullable=True),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index("ix_consents_customer_purpose", ["customer", "purpose"], unique=False)

    op.create_table(
        "privacy_audit",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("op", sa.String(length=32), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_sha256", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_privacy_audit")),
        sa.UniqueConstraint("prev_sha256", name=op.f("uq_privacy_audit_prev_sha256")),
    )
    with op.batch_alter_table("privacy_audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_audit_customer"), ["customer"], unique=False)

    op.create_table(
        "discarded_events",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("camera", sa.String(length=64), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("discarded_t", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"],
                                name=op.f("fk_discarded_events_session_id_sessions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discarded_events")),
    )
    with op.batch_alter_table("discarded_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_discarded_events_session_id"), ["session_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_discarded_events_t"), ["t"], unique=False)

    op.create_table(
        "stopped_tracks",
        sa.Column("camera", sa.String(length=64), nullable=False),
        sa.Column("track", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("camera", "track", name=op.f("pk_stopped_tracks")),
    )
    with op.batch_alter_table("stopped_tracks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stopped_tracks_t"), ["t"], unique=False)

    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stopped_t", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("stopped_why", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("detached_t", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("detached_t")
        batch_op.drop_column("stopped_why")
        batch_op.drop_column("stopped_t")

    with op.batch_alter_table("stopped_tracks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stopped_tracks_t"))

    op.drop_table("stopped_tracks")
    with op.batch_alter_table("discarded_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_discarded_events_t"))
        batch_op.drop_index(batch_op.f("ix_discarded_events_session_id"))

    op.drop_table("discarded_events")
    with op.batch_alter_table("privacy_audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_audit_customer"))

    op.drop_table("privacy_audit")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index("ix_consents_customer_purpose")

    op.drop_table("consents")
