"""cooperations go back and forth: whose turn it is, the round, and every step's terms

``cooperations.turn``: who must act next on a proposal (``host``: the host or its
agency; ``brand``), ``host`` for every existing row (a proposal waits for its host).
``cooperations.round``: which offer the current terms are (1: the proposal; each
counter-offer adds one). ``cooperation_rounds``: one row per step (the proposal, each
counter-offer with its terms and message, the decision), filled for existing
agreements with their proposal and, when decided, the decision on those terms.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMN (SQLite too): a batch copy would drop the referenced table
    op.add_column(
        "cooperations",
        sa.Column("turn", sa.String(8), nullable=False, server_default=sa.text("'host'")),
    )
    op.add_column(
        "cooperations",
        sa.Column("round", sa.Integer, nullable=False, server_default=sa.text("1")),
    )
    op.create_table(
        "cooperation_rounds",
        sa.Column(
            "cooperation_id",
            sa.Integer,
            sa.ForeignKey("cooperations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("party", sa.String(8), nullable=False),
        sa.Column("by_user", sa.Integer, nullable=True),
        sa.Column("commission_bps", sa.Integer, nullable=False),
        sa.Column("flat_fee_minor", sa.BigInteger, nullable=True),
        sa.Column("flat_fee_currency", sa.String(3), nullable=True),
        sa.Column("message", sa.String(500), nullable=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
    )
    terms = "commission_bps, flat_fee_minor, flat_fee_currency"
    columns = f"cooperation_id, step, round, action, party, by_user, {terms}, message, at_ms"
    op.execute(
        f"INSERT INTO cooperation_rounds ({columns}) "
        f"SELECT id, 1, 1, 'proposed', 'brand', brand_id, {terms}, note, created_ms "
        "FROM cooperations"
    )
    op.execute(
        f"INSERT INTO cooperation_rounds ({columns}) "
        "SELECT id, 2, 1, CASE WHEN status = 'ended' THEN 'accepted' ELSE status END, "
        "CASE WHEN status = 'withdrawn' THEN 'brand' ELSE 'host' END, "
        f"decided_by, {terms}, NULL, decided_ms "
        "FROM cooperations WHERE decided_ms IS NOT NULL"
    )
    op.execute(
        f"INSERT INTO cooperation_rounds ({columns}) "
        f"SELECT id, 3, 1, 'ended', 'host', NULL, {terms}, NULL, ended_ms "
        "FROM cooperations WHERE ended_ms IS NOT NULL AND decided_ms IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("cooperation_rounds")
    op.drop_column("cooperations", "round")
    op.drop_column("cooperations", "turn")
