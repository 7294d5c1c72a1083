-- An upheld objection that came with neither the corrected revision nor a withdrawal (a
-- decision over HTTP carries none) keeps the record disputed until the department's next
-- revision of it arrives (docs/decisions.md, "An upheld objection keeps the flag until the
-- correction").
ALTER TABLE objections ADD COLUMN correction_awaited boolean NOT NULL DEFAULT false;
CREATE INDEX objections_correction_awaited ON objections (department, record_id)
    WHERE correction_awaited;
