-- PostgreSQL twin of migrations/sqlite/0004: the SLA push state of a ticket
-- (delivered at, failed delivery rounds, last error, claim of the sweep delivering it).
ALTER TABLE tickets ADD COLUMN overdue_pushed_at TEXT;
ALTER TABLE tickets ADD COLUMN overdue_push_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN overdue_push_error TEXT;
ALTER TABLE tickets ADD COLUMN overdue_push_claimed_until TEXT;
