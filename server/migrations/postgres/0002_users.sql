-- Accounts. Usernames are validated lowercase before they get here; the
-- password column holds an argon2id PHC string, never the password.
CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

-- Who created a task and who it is assigned to, by username: the creator
-- stays on record even if the account is deleted later; an assignee whose
-- account is deleted is cleared.
ALTER TABLE tasks ADD COLUMN created_by TEXT;
ALTER TABLE tasks ADD COLUMN assignee TEXT;
CREATE INDEX tasks_assignee ON tasks (assignee);
