-- Signed-in sessions. Every token names its session, and a token is good
-- only while its row exists: signing out deletes the row, a password change
-- deletes all of the account's rows, and with one shared database that
-- holds on every instance at once. `started_at` (Unix seconds) is the
-- sign-in the session began with; refreshing a token never moves it, so a
-- session cannot be renewed past its maximum length.
-- `n` orders sessions by when they began, sign-ins within one second
-- included.
CREATE TABLE sessions (
    n          INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT   NOT NULL UNIQUE,
    user_id    BIGINT NOT NULL,
    started_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id, started_at);
