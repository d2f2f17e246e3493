-- dbphase's own tables on MariaDB/MySQL, in the connection's database.
-- {version_table} is the repository's version table (repository.yaml
-- version_table, default dbphase_version).  Times are Unix seconds from the
-- database's clock.  Statements end with ';' at the end of a line.  Format 2.
CREATE TABLE IF NOT EXISTS dbphase_meta (
  name varchar(64) PRIMARY KEY,
  value varchar(255) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS {version_table} (
  repository varchar(255) PRIMARY KEY,
  expand_version bigint NOT NULL DEFAULT 0,
  migrate_version bigint NOT NULL DEFAULT 0,
  contract_version bigint NOT NULL DEFAULT 0,
  updated_at bigint NOT NULL,
  CHECK (expand_version >= migrate_version AND migrate_version >= contract_version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS dbphase_migrations (
  repository varchar(255) NOT NULL,
  version bigint NOT NULL,
  checksum char(64) NOT NULL,
  recorded_at bigint NOT NULL,
  PRIMARY KEY (repository, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS dbphase_steps (
  repository varchar(255) NOT NULL,
  step_id varchar(64) NOT NULL,
  done_at bigint NOT NULL,
  PRIMARY KEY (repository, step_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS dbphase_progress (
  repository varchar(255) NOT NULL,
  step_id varchar(64) NOT NULL,
  chunk int NOT NULL DEFAULT 0,
  last_key text,
  chunk_end text,
  rows_done bigint NOT NULL DEFAULT 0,
  rows_total bigint,
  done boolean NOT NULL DEFAULT false,
  updated_at bigint NOT NULL,
  PRIMARY KEY (repository, step_id, chunk)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS dbphase_nodes (
  name varchar(255) NOT NULL,
  repository varchar(255) NOT NULL,
  schema_version bigint NOT NULL,
  registered_at bigint NOT NULL,
  heartbeat_at bigint NOT NULL,
  PRIMARY KEY (repository, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS dbphase_history (
  id bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
  repository varchar(255) NOT NULL,
  at bigint NOT NULL,
  who varchar(255) NOT NULL,
  command varchar(255) NOT NULL,
  from_state varchar(64),
  to_state varchar(64),
  result varchar(32) NOT NULL,
  seconds double,
  detail text
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
-- Format 2: one row per repository, rewritten by every new holder of its
-- cluster lock; migrate's batches check it (state.c, "The lock fence").
CREATE TABLE IF NOT EXISTS dbphase_locks (
  repository varchar(255) PRIMARY KEY,
  generation bigint NOT NULL,
  holder_session bigint NOT NULL,
  holder varchar(255) NOT NULL,
  taken_at bigint NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
