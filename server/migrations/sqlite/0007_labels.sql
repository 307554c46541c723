-- Labels: a name and a colour (from a fixed palette), per board. A card's
-- labels are kept on the card as ",<id>,<id>," (empty for none), so a
-- task is still one row to read and to publish; deleting a label takes
-- ",<id>," out of its board's cards.
CREATE TABLE labels (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    board_id   BIGINT NOT NULL,
    name       TEXT   NOT NULL,
    color      TEXT   NOT NULL,
    created_at TEXT   NOT NULL,
    UNIQUE (board_id, name)
);
ALTER TABLE tasks ADD COLUMN labels TEXT NOT NULL DEFAULT '';
