-- dbphase's own tables on SQLite.  {version_table} is the repository's version
-- table (repository.yaml version_table, default dbphase_version).  Times are
-- Unix seconds from the database's clock.  Statements end with ';' at the end
-- of a line.  Format 2.
CREATE TABLE IF NOT EXISTS dbphase_meta (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS {version_table} (
  repository TEXT PRIMARY KEY,
  expand_version INTEGER NOT NULL DEFAULT 0,
  migrate_version INTEGER NOT NULL DEFAULT 0,
  contract_version INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL,
  CHECK (expand_version >= migrate_version AND migrate_version >= contract_version)
);
CREATE TABLE IF NOT EXISTS dbphase_migrations (
  repository TEXT NOT NULL,
  version INTEGER NOT NULL,
  checksum TEXT NOT NULL,
  recorded_at INTEGER NOT NULL,
  PRIMARY KEY (repository, version)
);
CREATE TABLE IF NOT EXISTS dbphase_steps (
  repository TEXT NOT NULL,
  step_id TEXT NOT NULL,
  done_at INTEGER NOT NULL,
  PRIMARY KEY (repository, step_id)
);
CREATE TABLE IF NOT EXISTS dbphase_progress (
  repository TEXT NOT NULL,
  step_id TEXT NOT NULL,
  chunk INTEGER NOT NULL DEFAULT 0,
  last_key TEXT,
  chunk_end TEXT,
  rows_done INTEGER NOT NULL DEFAULT 0,
  rows_total INTEGER,
  done INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (repository, step_id, chunk)
);
CREATE TABLE IF NOT EXISTS dbphase_nodes (
  name TEXT NOT NULL,
  repository TEXT NOT NULL,
  schema_version INTEGER NOT NULL,
  registered_at INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL,
  PRIMARY KEY (repository, name)
);
CREATE TABLE IF NOT EXISTS dbphase_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  repository TEXT NOT NULL,
  at INTEGER NOT NULL,
  who TEXT NOT NULL,
  command TEXT NOT NULL,
  from_state TEXT,
  to_state TEXT,
  result TEXT NOT NULL,
  seconds REAL,
  detail TEXT
);
-- Format 2: one row per repository, rewritten by every new holder of its
-- cluster lock; migrate's batches check it (state.c, "The lock fence").
CREATE TABLE IF NOT EXISTS dbphase_locks (
  repository TEXT PRIMARY KEY,
  generation INTEGER NOT NULL,
  holder_session INTEGER NOT NULL,
  holder TEXT NOT NULL,
  taken_at INTEGER NOT NULL
);
