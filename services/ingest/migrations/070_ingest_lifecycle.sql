-- Whom each audit line is about, so that the purge (shared/purge.py) finds every line about
-- a person whose negative information is erased, rejected submissions included. Lines from
-- before take the subject of their record where ingest accepted it.
ALTER TABLE submissions ADD COLUMN subject_key text;
UPDATE submissions s SET subject_key = r.subject_key
FROM records r WHERE r.department = s.department AND r.record_id = s.record_id;
CREATE INDEX submissions_subject ON submissions (subject_key);
CREATE INDEX records_subject ON records (subject_key);
