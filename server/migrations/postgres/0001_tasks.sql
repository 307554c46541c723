-- Tasks. Timestamps are RFC 3339 text, as in SQLite, so one query set serves
-- both back ends through sqlx's Any driver.
CREATE TABLE tasks (
    id          BIGSERIAL PRIMARY KEY,
    title       TEXT   NOT NULL,
    description TEXT   NOT NULL DEFAULT '',
    status      TEXT   NOT NULL CHECK (status IN ('todo', 'doing', 'done')),
    created_at  TEXT   NOT NULL,
    updated_at  TEXT   NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1
);
