-- Boards and their members. Board 1 is the shared board every installation
-- starts with: no owner, open to everyone (see app::protocol::boards); the
-- tasks that existed before boards are on it. Owners are members too, with
-- the role 'owner', so one lookup answers "what may this user do here".
-- Members are named by username, like task assignees; deleting an account
-- removes its memberships and the boards it owns.
CREATE TABLE boards (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT   NOT NULL,
    owner      TEXT,
    visibility TEXT   NOT NULL CHECK (visibility IN ('private', 'public', 'open')),
    created_at TEXT   NOT NULL,
    version    BIGINT NOT NULL DEFAULT 1
);
INSERT INTO boards (name, owner, visibility, created_at)
    VALUES ('Team board', NULL, 'open', '2026-01-01T00:00:00.000Z');
CREATE INDEX boards_owner ON boards (owner);

CREATE TABLE board_members (
    board_id BIGINT NOT NULL,
    username TEXT   NOT NULL,
    role     TEXT   NOT NULL CHECK (role IN ('owner', 'member', 'viewer')),
    added_at TEXT   NOT NULL,
    PRIMARY KEY (board_id, username)
);
CREATE INDEX board_members_user ON board_members (username);

ALTER TABLE tasks ADD COLUMN board_id BIGINT NOT NULL DEFAULT 1;
CREATE INDEX tasks_board ON tasks (board_id, id);
