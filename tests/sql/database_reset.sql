-- Changes emptying the tables cannot undo (tests/test_database_reset.py).

-- name: add_stray_column()!
-- DDL a test might leave behind.
ALTER TABLE payments ADD COLUMN stray integer;

-- name: change_a_seeded_row()!
-- A row the migrations inserted, changed.
DELETE FROM payment_transitions WHERE from_status = 'FAILED' AND to_status = 'PROCESSING';

-- name: add_stray_function()!
-- DDL that touches no table.
CREATE FUNCTION stray() RETURNS integer LANGUAGE sql AS 'SELECT 1';

-- name: drop_an_index()!
-- DDL that removes something.
DROP INDEX outbox_listing;

-- name: change_a_database_setting()!
-- A setting of the database itself (no event trigger sees it).
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET work_mem = %L', current_database(), '8MB');
END
$$;
