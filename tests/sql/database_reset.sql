-- Changes emptying the tables cannot undo (tests/test_database_reset.py).

-- name: add_stray_column()!
-- DDL a test might leave behind.
ALTER TABLE payments ADD COLUMN stray integer;

-- name: change_a_seeded_row()!
-- A row the migrations inserted, changed.
DELETE FROM payment_transitions WHERE from_status = 'FAILED' AND to_status = 'PROCESSING';
