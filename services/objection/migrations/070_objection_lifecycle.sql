-- When what the service keeps about a record is erased (shared/purge.py); and an objection's
-- contact, erased a while after its decision (`objection_contact_days`).
ALTER TABLE known_records ADD COLUMN purge_on date;
CREATE INDEX known_records_subject ON known_records (subject_type, subject_id);
ALTER TABLE objections ALTER COLUMN contact DROP NOT NULL,
                       ADD COLUMN contact_erased_at timestamptz;
CREATE INDEX objections_subject ON objections (subject_key);
CREATE INDEX objections_contact_due ON objections (decided_at)
    WHERE contact IS NOT NULL AND status <> 'routed';
