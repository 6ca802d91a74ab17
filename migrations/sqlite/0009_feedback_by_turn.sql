-- A turn's feedback is looked up on every turn that follows it (how many
-- unhelpful answers led up to it); without this index each lookup read the
-- whole feedback table.
CREATE INDEX feedback_by_turn ON feedback (trace_id);
