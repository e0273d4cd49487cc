"""Engine, sessions and migrations for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Insert

from ..errors import RpacsError

_MIGRATIONS = Path(__file__).parent / "migrations"


def _head_revision() -> str:
    """The newest revision: the one no other migration names as its ``down_revision``."""
    revisions: dict[str, str | None] = {}
    for script in (_MIGRATIONS / "versions").glob("*.py"):
        found = re.findall(r"^(revision|down_revision) = (.+)$", script.read_text(), re.M)
        values = {k: ast.literal_eval(v) for k, v in found}
        revisions[values["revision"]] = values.get("down_revision")
    parents = set(revisions.values())
    heads = [r for r in revisions if r not in parents]
    return heads[0] if len(heads) == 1 else ""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (review, web) work while an import writes; foreign keys are off by
    # default in SQLite and the schema relies on cascades.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """One index database. ``Database(url).migrate()`` brings it to the current schema."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Apply every Alembic migration not yet applied (run on every start).

        The common case, a database already at the newest revision, is answered with one
        query and without loading Alembic, which would cost every command a noticeable
        start-up delay.
        """
        if self._current_revision() == _head_revision():
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.attributes["connection_engine"] = self.engine
        try:
            command.upgrade(cfg, "head")
        except Exception as exc:  # the driver's message names the database, not patient data
            raise RpacsError(f"could not migrate the index database: {exc}") from exc

    def _current_revision(self) -> str | None:
        try:
            with self.engine.connect() as connection:
                return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:  # no table yet (or no database): migrate
            return None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back when it raises."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def upsert(
    session: Session,
    table: Any,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    add: Sequence[str] = (),
    replace: Sequence[str] = (),
    where: Callable[[Any, Any], Any] | None = None,
) -> None:
    """Insert ``rows``; on a key conflict add the ``add`` columns and overwrite ``replace``.

    ``where(table, excluded)``, when given, is the condition a stored row must meet to be
    updated (``excluded``: the values of the row that was to be inserted); a stored row
    that does not meet it is left as it is.

    Works on SQLite and PostgreSQL; one call per batch, so counting the tag values of
    thousands of instances costs one executemany, not a statement per value.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    # Imported here: the PostgreSQL dialect costs every command start ~40 ms otherwise.
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as insert_fn
    else:
        from sqlalchemy.dialects.sqlite import insert as insert_fn
    # One compiled single-row statement run for every row (the driver's executemany): a
    # multi-row VALUES list would be compiled anew for every batch, with thousands of
    # parameters, which cost more than the writing itself.
    stmt: Insert = insert_fn(table)
    updates = {col: table.c[col] + stmt.excluded[col] for col in add}
    updates.update({col: stmt.excluded[col] for col in replace})
    if updates:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_=updates,
            where=where(table, stmt.excluded) if where is not None else None)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    session.execute(stmt, list(rows))
