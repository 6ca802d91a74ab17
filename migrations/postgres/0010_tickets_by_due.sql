-- The ticket list is ordered by pick-up deadline and usually cut to a page;
-- without this index every listing read and sorted every ticket ever opened.
CREATE INDEX tickets_by_due ON tickets (due_at);
