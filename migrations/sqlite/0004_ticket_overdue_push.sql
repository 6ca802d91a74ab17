-- SLA push: a ticket still new past its due_at is announced to the configured
-- webhook once. These columns make "once" survive restarts and overlapping sweeps.
ALTER TABLE tickets ADD COLUMN overdue_pushed_at TEXT;                    -- when the webhook accepted it (NULL: not yet)
ALTER TABLE tickets ADD COLUMN overdue_push_attempts INTEGER NOT NULL DEFAULT 0; -- delivery rounds that failed
ALTER TABLE tickets ADD COLUMN overdue_push_error TEXT;                   -- why the last round failed
ALTER TABLE tickets ADD COLUMN overdue_push_claimed_until TEXT;           -- a sweep is delivering it until then
