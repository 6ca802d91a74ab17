-- What the agent needs on a hand-off ticket, gathered from the enterprise
-- systems at hand-off time: profile, orders, repair history, refunds (JSON, masked).
ALTER TABLE tickets ADD COLUMN context TEXT NOT NULL DEFAULT '{}';
