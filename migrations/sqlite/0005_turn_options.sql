-- The intents a clarifying question offered (JSON array of ids), so that a
-- reply by number ("2", "第二个") can be resolved on the next turn.
ALTER TABLE turns ADD COLUMN options TEXT;

-- A customer's tickets (ticket_status answers, profiles).
CREATE INDEX tickets_by_customer ON tickets (customer_id, created_at);
