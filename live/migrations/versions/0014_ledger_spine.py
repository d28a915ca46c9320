"""the ledger moves into the spine: lines without a session, a ref, an agency's share

``ledger_entries`` is now ``live.ledger``'s, posted to by every feature.
``session_id`` becomes nullable (a deal is paid before it is bound to a session);
``ref`` names what the money is for in the posting feature's words (``deal:17``), and
``agency_id`` the agency whose share a line is; both NULL on every existing line.

Going back refuses while any line uses what 0013 cannot hold (no session, a ``ref``,
an agency): dropping them would lose money records.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite cannot drop a NOT NULL in place: the batch copies the table there (no
    # table references ledger_entries, so the copy drops nothing else); PostgreSQL
    # alters it in place.
    with op.batch_alter_table("ledger_entries") as table:
        table.alter_column("session_id", existing_type=sa.Integer, nullable=True)
        table.add_column(sa.Column("ref", sa.String(40), nullable=True))
        table.add_column(sa.Column("agency_id", sa.Integer, nullable=True))
        table.create_index("ix_ledger_ref", ["ref"])
        table.create_index("ix_ledger_agency_created", ["agency_id", "created_ms"])


def downgrade() -> None:
    beyond = op.get_bind().scalar(
        sa.text(
            "SELECT count(*) FROM ledger_entries "
            "WHERE session_id IS NULL OR ref IS NOT NULL OR agency_id IS NOT NULL"
        )
    )
    if beyond:
        raise RuntimeError(
            f"{beyond} ledger lines have no session, a ref or an agency, which revision "
            "0013 cannot hold; not going back"
        )
    with op.batch_alter_table("ledger_entries") as table:
        table.drop_index("ix_ledger_agency_created")
        table.drop_index("ix_ledger_ref")
        table.drop_column("agency_id")
        table.drop_column("ref")
        table.alter_column("session_id", existing_type=sa.Integer, nullable=False)
