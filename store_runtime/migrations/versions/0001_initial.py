"""Initial schema: sessions, entries, tracks, basket events, reviews, charges, refunds, idempotency
keys, the local provider's ledger, credentials.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Written out in full (not derived from the models at run time): a revision must build the same
tables forever, whatever the models become.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "applied_events",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("camera", sa.String(length=64), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("applied_t", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applied_events")),
    )
    op.create_table(
        "credentials",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_t", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_credentials")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_credentials_token_sha256")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("session_id", sa.String(length=40), nullable=True),
        sa.Column("charge_id", sa.String(length=40), nullable=True),
        sa.Column("created_t", sa.Float(), nullable=False),
        sa.Column("claimed_t", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_keys_created_t"), ["created_t"], unique=False)

    op.create_table(
        "payment_ledger",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("parent", sa.String(length=40), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("t", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_ledger")),
        sa.UniqueConstraint("key", name=op.f("uq_payment_ledger_key")),
    )
    with op.batch_alter_table("payment_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_ledger_parent"), ["parent"], unique=False)

    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=False),
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("gate", sa.String(length=64), nullable=False),
        sa.Column("party", sa.Integer(), nullable=False),
        sa.Column("entered_t", sa.Float(), nullable=False),
        sa.Column("exited_t", sa.Float(), nullable=True),
        sa.Column("exit_gate", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("jti", name=op.f("uq_sessions_jti")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_entered_t"), ["entered_t"], unique=False)
        batch_op.create_index(batch_op.f("ix_sessions_state"), ["state"], unique=False)

    op.create_table(
        "basket_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("action", sa.String(length=4), nullable=False),
        sa.Column("gtin", sa.String(length=14), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("unit_cents", sa.Integer(), nullable=False),
        sa.Column("slot", sa.String(length=64), nullable=True),
        sa.Column("camera", sa.String(length=64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("review_id", sa.String(length=40), nullable=True),
        sa.Column("applied_t", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name=op.f("fk_basket_events_session_id_sessions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_basket_events")),
    )
    with op.batch_alter_table("basket_events", schema=None) as batch_op:
        batch_op.create_index("ix_basket_events_session_t", ["session_id", "t"], unique=False)

    op.create_table(
        "charges",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("authorisation", sa.String(length=64), nullable=True),
        sa.Column("capture", sa.String(length=64), nullable=True),
        sa.Column("decline_reason", sa.String(length=300), nullable=True),
        sa.Column("created_t", sa.Float(), nullable=False),
        sa.Column("done_t", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name=op.f("fk_charges_session_id_sessions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charges")),
        sa.UniqueConstraint("session_id", "attempt", name=op.f("uq_charges_session_id_attempt")),
    )
    with op.batch_alter_table("charges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_charges_state"), ["state"], unique=False)

    op.create_table(
        "entries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("gate", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=24), nullable=True),
        sa.Column("code_sha256", sa.String(length=64), nullable=False),
        sa.Column("customer", sa.String(length=64), nullable=True),
        sa.Column("jti", sa.String(length=64), nullable=True),
        sa.Column("party", sa.Integer(), nullable=True),
        sa.Column("admitted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=True),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name=op.f("fk_entries_session_id_sessions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entries")),
    )
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_entries_t"), ["t"], unique=False)

    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("created_t", sa.Float(), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=True),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("event_id", sa.String(length=24), nullable=True),
        sa.Column("camera", sa.String(length=64), nullable=True),
        sa.Column("track", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=4), nullable=True),
        sa.Column("gtin", sa.String(length=14), nullable=True),
        sa.Column("qty", sa.Integer(), nullable=True),
        sa.Column("slot", sa.String(length=64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_t", sa.Float(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("applied_session_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["applied_session_id"], ["sessions.id"], name=op.f("fk_reviews_applied_session_id_sessions")
        ),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name=op.f("fk_reviews_session_id_sessions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index("ix_reviews_camera_track", ["camera", "track"], unique=False)
        batch_op.create_index("ix_reviews_session_state", ["session_id", "state"], unique=False)
        batch_op.create_index(batch_op.f("ix_reviews_state"), ["state"], unique=False)

    op.create_table(
        "tracks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("camera", sa.String(length=64), nullable=False),
        sa.Column("track", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("entered_t", sa.Float(), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=True),
        sa.Column("left_t", sa.Float(), nullable=True),
        sa.Column("left_zone", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name=op.f("fk_tracks_session_id_sessions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracks")),
        sa.UniqueConstraint("camera", "track", name=op.f("uq_tracks_camera_track")),
    )
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tracks_session_id"), ["session_id"], unique=False)

    op.create_table(
        "refunds",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("session_id", sa.String(length=40), nullable=False),
        sa.Column("charge_id", sa.String(length=40), nullable=False),
        sa.Column("review_id", sa.String(length=40), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("provider_ref", sa.String(length=64), nullable=True),
        sa.Column("created_t", sa.Float(), nullable=False),
        sa.Column("done_t", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["charge_id"], ["charges.id"], name=op.f("fk_refunds_charge_id_charges")),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], name=op.f("fk_refunds_session_id_sessions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refunds_session_id"), ["session_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refunds_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refunds_state"))
        batch_op.drop_index(batch_op.f("ix_refunds_session_id"))

    op.drop_table("refunds")
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracks_session_id"))

    op.drop_table("tracks")
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reviews_state"))
        batch_op.drop_index("ix_reviews_session_state")
        batch_op.drop_index("ix_reviews_camera_track")

    op.drop_table("reviews")
    with op.batch_alter_table("entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entries_t"))

    op.drop_table("entries")
    with op.batch_alter_table("charges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_charges_state"))

    op.drop_table("charges")
    with op.batch_alter_table("basket_events", schema=None) as batch_op:
        batch_op.drop_index("ix_basket_events_session_t")

    op.drop_table("basket_events")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_state"))
        batch_op.drop_index(batch_op.f("ix_sessions_entered_t"))

    op.drop_table("sessions")
    with op.batch_alter_table("payment_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_ledger_parent"))

    op.drop_table("payment_ledger")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_created_t"))

    op.drop_table("idempotency_keys")
    op.drop_table("credentials")
    op.drop_table("applied_events")
