-- Cards get an order within their column and a due date. `sort_order`
-- has gaps (65,536 between neighbours) so that placing a card between two
-- others usually writes that card alone; existing cards keep their id
-- order. `due_on` is a day, YYYY-MM-DD.
ALTER TABLE tasks ADD COLUMN sort_order BIGINT NOT NULL DEFAULT 0;
UPDATE tasks SET sort_order = id * 65536;
ALTER TABLE tasks ADD COLUMN due_on TEXT;
CREATE INDEX tasks_column ON tasks (board_id, status, sort_order, id);
