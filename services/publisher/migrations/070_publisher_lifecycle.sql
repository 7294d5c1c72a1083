-- Lifecycle of list entries and notices (services/publisher/domain.py, sweeps.py).

-- A notice for an extended term names the one it replaces (CONTRACT.md, `supersedes`); a
-- superseded notice is not revoked again at exit. `related_until`: when the persons a notice
-- names beside its subject are erased from it (征信业管理条例 art. 16).
ALTER TABLE notices ADD COLUMN supersedes uuid, ADD COLUMN related_until date;
CREATE INDEX notices_supersedes ON notices (supersedes) WHERE supersedes IS NOT NULL;
CREATE INDEX notices_related_due ON notices (related_until) WHERE related_until IS NOT NULL;

-- Decisions whose listing ran its full term: only a new decision (a new decided_on) lists
-- the subject again (法释〔2017〕7号); a later revision of the same decision does not.
CREATE TABLE served_decisions (
    list         text NOT NULL,
    subject_key  text NOT NULL,
    department   text NOT NULL,
    record_id    text NOT NULL,
    decided_on   date NOT NULL,
    PRIMARY KEY (list, subject_key, department, record_id, decided_on)
);
CREATE INDEX served_decisions_subject ON served_decisions (subject_key);
CREATE INDEX served_decisions_record ON served_decisions (department, record_id);
INSERT INTO served_decisions (list, subject_key, department, record_id, decided_on)
SELECT DISTINCT e.list, e.subject_key, b ->> 'department', b ->> 'record_id',
       (r ->> 'decided_on')::date
FROM list_entries e
CROSS JOIN jsonb_array_elements(e.basis) AS b
JOIN subjects s ON s.subject_key = e.subject_key
CROSS JOIN json_array_elements(s.snapshot -> 'records') AS r
WHERE e.status = 'exited' AND e.exit_reason = 'expired'
  AND r ->> 'department' = b ->> 'department' AND r ->> 'record_id' = b ->> 'record_id'
ON CONFLICT DO NOTHING;

-- A row of the changes feed whose entry was erased keeps its op, entry and dates only.
ALTER TABLE list_changes ALTER COLUMN subject_key DROP NOT NULL;
CREATE INDEX list_changes_by_subject_key ON list_changes (subject_key);
CREATE INDEX notices_by_subject_key ON notices (subject_key);
