"""Django's SQLite backend, with the writers of one process queuing on a lock instead of sleeping.

Why
    Under ASGI, Django runs each request's sync code on a thread of its own, each with its own
    SQLite connection. SQLite lets one connection write at a time; the others get SQLITE_BUSY
    and SQLite's busy handler puts them to sleep for growing intervals (1, 2, 5, 10 … 100 ms)
    before trying again. With eight pods claiming at once the slowest claims spent most of
    their time asleep while the lock was already free (``next`` p95 was 15-20 times its p50).

What
    One ``WriterLock`` per database file per process. A connection takes it before a statement
    that makes SQLite take its write lock: ``BEGIN IMMEDIATE``/``BEGIN EXCLUSIVE`` (what
    ``atomic()`` runs with ``transaction_mode: IMMEDIATE``) and, outside a transaction,
    ``INSERT``/``UPDATE``/``DELETE``/``REPLACE`` and DDL. It keeps it while the connection is in
    a transaction and gives it back on commit, rollback or close; a write in autocommit mode
    gives it back when ``execute`` returns (an ``INSERT … RETURNING`` whose rows are read later
    keeps SQLite's lock a moment longer; Django reads them at once). Savepoints run inside the
    transaction that already holds it, so nested ``atomic()`` blocks never take it again.
    Reads never take it: in WAL mode they run beside the writer. Waiters are served first
    come, first served and the lock is handed straight to the next one, so no writer of this
    process ever reaches SQLite's busy handler because of another thread of the same process.
    The busy ``timeout`` still applies to other processes (a CLI import, a second server
    worker).

Why it cannot deadlock
    A deadlock needs a thread that holds the writer lock to wait for something that waits for
    the writer lock. While holding it, a thread is running a write transaction; it can wait for

    - SQLite (another *process* holding the database's write lock): bounded by ``timeout``,
      and that process does not wait for us;
    - another connection of its own thread to the same file: the lock is re-entrant per
      thread, so that connection goes straight on to SQLite, exactly as without this lock;
    - another thread. PodBoard's transactions do not hand work to other threads: announcements
      to boards are sent from ``transaction.on_commit`` hooks, which Django runs after
      ``COMMIT`` (this lock is already released by then); the event loop never touches the
      database (Django refuses sync database calls there) and the board's render thread only
      reads.

    As a guard against a future change breaking the last point, a writer never waits longer
    than ``timeout`` for the lock: it then fails with ``database is locked``, as SQLite itself
    would have. A lock left held by a thread that died inside a transaction without closing its
    connection is taken over by the next waiter; SQLite's own lock still protects the data.

Idle connections
    Under ASGI every request runs on a fresh thread, so Django opened a new SQLite connection
    per request (connect, register Django's SQL functions, run the init PRAGMAs, parse the
    schema on the first query) and closed it at the end. With ``OPTIONS["idle_connections"]``
    (default 0: off) a closed connection is kept instead, outside any transaction, and the next
    thread that connects takes it. A connection belongs to one wrapper at a time: it enters the
    pool only after Django closed its wrapper and leaves it for one wrapper only. Before it
    enters, its cursors are closed (so none keeps a read snapshot open or reaches the next
    owner) and an open transaction is rolled back; on the way out the PRAGMAs a new connection
    starts with are set again. It is not kept if it was closed inside an ``atomic()`` block or
    after a database error, and it is dropped if the database file was replaced. Django's
    test-database creation, cloning and destruction close the idle connections of that file
    first, so the file on disk is complete (WAL checkpointed) whenever Django expects every
    connection to be closed. An idle connection keeps its file open: delete or copy a database
    file only when no PodBoard process uses it (as with any open SQLite connection).

Forks
    A child process starts with fresh locks and no idle connections (a lock held by a parent's
    thread would never be released in the child; an SQLite connection must not cross a fork, so
    the parent's idle ones are abandoned in the child, never used or closed there).
"""

import functools
import os
import threading
import time
import weakref
from collections import deque
from sqlite3 import dbapi2 as Database

from django.db.backends.sqlite3 import base as sqlite3_base
from django.db.backends.sqlite3 import creation as sqlite3_creation

# How often a waiter checks whether the holder's thread is still alive.
ORPHAN_CHECK_SECONDS = 1.0

_WRITE_PREFIXES = (
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "BEGIN IMMEDIATE",
    "BEGIN EXCLUSIVE",
    "CREATE",
    "DROP",
    "ALTER",
)


def is_write(sql):
    """True when ``sql`` makes SQLite take its write lock (a read-only ``SELECT`` does not)."""
    return sql.lstrip()[:15].upper().startswith(_WRITE_PREFIXES)


class WriterLock:
    """A first-come-first-served lock, re-entrant per thread, released by ticket.

    ``acquire`` returns a ticket (the grant's generation); ``release(ticket)`` is a no-op when
    the ticket is stale, so a connection closed late (or from another thread, for connections
    Django lets threads share) cannot release somebody else's hold. The holder is a
    ``threading.Thread`` object, not an ident: idents of dead threads are reused.
    """

    def __init__(self):
        self._mutex = threading.Lock()
        self._owner = None  # the holding thread
        self._depth = 0
        self._generation = 0
        self._waiters = deque()  # (thread, gate): the gate is released on grant

    @property
    def held(self):
        return self._owner is not None

    def acquire(self, timeout):
        """Take the lock for the calling thread; raise ``OperationalError`` after ``timeout``."""
        me = threading.current_thread()
        with self._mutex:
            if self._owner is None:
                return self._grant(me)
            if self._owner is me:
                self._depth += 1
                return self._generation
            gate = threading.Lock()
            gate.acquire()
            entry = (me, gate)
            self._waiters.append(entry)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            granted = gate.acquire(timeout=max(0.0, min(remaining, ORPHAN_CHECK_SECONDS)))
            with self._mutex:
                if granted or self._owner is me:  # (granted between the timeout and the mutex)
                    return self._generation
                if not self._owner.is_alive():
                    self._hand_over()  # the holder died inside a transaction
                    if self._owner is me:
                        return self._generation
                    continue
                if remaining <= 0:
                    self._waiters.remove(entry)
                    raise Database.OperationalError("database is locked")

    def release(self, ticket):
        """Release one hold taken with ``ticket``; ignore a stale ticket."""
        with self._mutex:
            if self._owner is None or ticket != self._generation:
                return
            self._depth -= 1
            if self._depth == 0:
                self._hand_over()

    def _grant(self, thread):
        self._owner, self._depth = thread, 1
        self._generation += 1
        return self._generation

    def _hand_over(self):
        if self._waiters:
            thread, gate = self._waiters.popleft()
            self._grant(thread)
            gate.release()
        else:
            self._owner, self._depth = None, 0


_locks = {}
_locks_mutex = threading.Lock()


def writer_lock_for(path):
    """The process's ``WriterLock`` for the database file at ``path``."""
    key = os.path.realpath(path)
    with _locks_mutex:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = WriterLock()
        return lock


class PooledConnection(Database.Connection):
    """An ``sqlite3.Connection`` that remembers which pool and which file it belongs to."""

    pool_key = None
    file_id = None  # (st_dev, st_ino) of the database file when it was opened


_idle = {}  # pool key → [PooledConnection], most recently used last
_idle_mutex = threading.Lock()
_abandoned = []  # a parent's idle connections, kept unclosed in a forked child


def _file_id(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _checkout(key, path):
    """An idle connection for ``key`` whose file is still the one at ``path``, or None."""
    with _idle_mutex:
        idle = _idle.get(key)
        conn = idle.pop() if idle else None
    if conn is None:
        return None
    if conn.file_id != _file_id(path):
        # The file was deleted or replaced under us: drop everything opened on the old one.
        drain(path)
        conn.close()
        return None
    return conn


def _checkin(conn, limit):
    """Keep ``conn`` for the next thread; False when the pool is full."""
    with _idle_mutex:
        idle = _idle.setdefault(conn.pool_key, [])
        if len(idle) >= limit:
            return False
        idle.append(conn)
        return True


def drain(path):
    """Close every idle connection to the database file at ``path``."""
    real = os.path.realpath(path)
    with _idle_mutex:
        keys = [key for key in _idle if key[0] == real]
        conns = [conn for key in keys for conn in _idle.pop(key)]
    for conn in conns:
        conn.close()


def _forget_locks_in_child():
    global _locks_mutex, _idle_mutex
    _locks_mutex = threading.Lock()
    _locks.clear()
    _idle_mutex = threading.Lock()
    _abandoned.extend(conn for idle in _idle.values() for conn in idle)
    _idle.clear()


os.register_at_fork(after_in_child=_forget_locks_in_child)


def _database_path(name):
    """The file behind a database NAME (a path or a ``file:`` URI), or None when in memory."""
    name = str(name)
    if name.startswith("file:"):
        if "mode=memory" in name:
            return None
        name = name[len("file:") :].split("?", 1)[0]
    if name in ("", ":memory:"):
        return None
    return name


class WriterCursor(sqlite3_base.SQLiteCursorWrapper):
    """Takes the connection's writer lock around statements that write (see the module doc)."""

    db = None  # the DatabaseWrapper, set by create_cursor

    def execute(self, query, params=None):
        db = self.db
        if db._writer_ticket is not None or not is_write(query):
            return super().execute(query, params)
        db._take_writer()
        try:
            return super().execute(query, params)
        finally:
            db._release_writer()

    def executemany(self, query, param_list):
        db = self.db
        if db._writer_ticket is not None or not is_write(query):
            return super().executemany(query, param_list)
        db._take_writer()
        try:
            return super().executemany(query, param_list)
        finally:
            db._release_writer()

    def convert_query(self, query, *, param_names=None):
        if param_names is None:
            return _qmark(query)
        return super().convert_query(query, param_names=param_names)


@functools.lru_cache(maxsize=1024)
def _qmark(query):
    """Django's "format" → "qmark" rewrite, remembered: the API runs the same statements over
    and over, and the regular expression over a long one costs more than running it."""
    return sqlite3_base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


class DatabaseCreation(sqlite3_creation.DatabaseCreation):
    """Close the idle connections of a test database before its file is replaced or copied."""

    def _create_test_db(self, verbosity, autoclobber, keepdb=False):
        self._drain(self._get_test_db_name())
        return super()._create_test_db(verbosity, autoclobber, keepdb)

    def _clone_test_db(self, suffix, verbosity, keepdb=False):
        self._drain(self.connection.settings_dict["NAME"])
        return super()._clone_test_db(suffix, verbosity, keepdb)

    def _destroy_test_db(self, test_database_name, verbosity):
        self._drain(test_database_name)
        return super()._destroy_test_db(test_database_name, verbosity)

    @staticmethod
    def _drain(name):
        path = _database_path(name) if name else None
        if path:
            drain(path)


class DatabaseWrapper(sqlite3_base.DatabaseWrapper):
    """Django's SQLite wrapper whose writers queue on the process's ``WriterLock``."""

    creation_class = DatabaseCreation

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._writer = None  # this file's WriterLock; None for an in-memory database
        self._writer_ticket = None  # set while this connection holds it
        self._writer_timeout = 5.0
        self._idle_limit = 0
        # Cursors of a connection that may go to the idle pool, closed before it goes there.
        self._open_cursors = weakref.WeakSet()

    def get_connection_params(self):
        kwargs = super().get_connection_params()
        self._idle_limit = int(kwargs.pop("idle_connections", 0) or 0)
        return kwargs

    def get_new_connection(self, conn_params):
        path = _database_path(conn_params["database"])
        self._writer = writer_lock_for(path) if path else None
        self._writer_timeout = float(conn_params.get("timeout", 5.0))
        if path is None or self._idle_limit <= 0:
            return super().get_new_connection(conn_params)
        key = (
            os.path.realpath(path),
            repr(sorted(conn_params.items())),
            tuple(self.init_commands),
        )
        conn = _checkout(key, path)
        if conn is not None:
            # Set again what a new connection starts with, in case the last user changed it
            # (disable_constraint_checking turns foreign keys off, a test the busy timeout).
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {int(self._writer_timeout * 1000)}")
            for command in self.init_commands:
                if command := command.strip():
                    conn.execute(command)
            return conn
        conn = super().get_new_connection({**conn_params, "factory": PooledConnection})
        conn.pool_key, conn.file_id = key, _file_id(path)
        return conn

    def create_cursor(self, name=None):
        if self._writer is None:
            return super().create_cursor(name)
        cursor = self.connection.cursor(factory=WriterCursor)
        cursor.db = self
        if self._idle_limit > 0:
            self._open_cursors.add(cursor)
        return cursor

    def _take_writer(self):
        if self._writer_ticket is None:
            self._writer_ticket = self._writer.acquire(self._writer_timeout)

    def _release_writer(self, *, closed=False):
        """Give the writer lock back unless the connection is still inside a transaction."""
        ticket = self._writer_ticket
        if ticket is None:
            return
        if not closed and self.connection is not None:
            try:
                if self.connection.in_transaction:
                    return
            except Database.ProgrammingError:
                pass  # closed: no transaction left
        self._writer_ticket = None
        self._writer.release(ticket)

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._release_writer()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_writer()

    def _close(self):
        try:
            if not self._keep_idle():
                return super()._close()
        finally:
            self._release_writer(closed=True)

    def _keep_idle(self):
        """Hand the connection to the idle pool instead of closing it, when that is safe."""
        conn = self.connection
        if (
            self._idle_limit <= 0
            or getattr(conn, "pool_key", None) is None
            or self.in_atomic_block
            or self.errors_occurred
        ):
            return False
        try:
            # A cursor left unfinished (a partly read ``.iterator()``) would keep its read
            # snapshot for the next user; one kept by its owner must not reach the next user's
            # connection. Closing them resets their statements and makes them unusable.
            for cursor in list(self._open_cursors):
                cursor.close()
            self._open_cursors = weakref.WeakSet()
            if conn.in_transaction:
                conn.rollback()
            if conn.in_transaction:
                return False
        except Database.Error:
            return False
        return _checkin(conn, self._idle_limit)
