-- When an objection passed its statutory deadline without a decision (tracked, reported).
ALTER TABLE objections ADD COLUMN overdue_at timestamptz;
CREATE INDEX objections_open ON objections (due_by) WHERE status = 'routed';
