-- The agent a ticket is assigned to.
ALTER TABLE tickets ADD COLUMN assignee TEXT;
