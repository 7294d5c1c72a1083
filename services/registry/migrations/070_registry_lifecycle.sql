-- Expiry at rest (services/registry/sweeps.py): each record's end of public display, and
-- whether the archive has already emitted the snapshot that takes it off. Records from before
-- take the date from their body and count as not yet swept, so the first sweep brings every
-- stored grade and listing up to date.
ALTER TABLE records ADD COLUMN public_until date,
                    ADD COLUMN display_ended boolean NOT NULL DEFAULT false;
UPDATE records SET public_until = (body ->> 'public_until')::date;
CREATE INDEX records_display_due ON records (public_until) WHERE NOT display_ended;

-- Records archived before the end of the act was kept: it is their decision date (the rule
-- for a submission that does not say), and a person's negative records are erased 5 years
-- after it (征信业管理条例 art. 16). The negative items are the catalogue's of 2026-11-28.
UPDATE records SET body = (body::jsonb || jsonb_build_object(
        'act_ended_on', body ->> 'decided_on',
        'purge_on', ((body ->> 'decided_on')::date + interval '5 years')::date))::json
WHERE subject_key LIKE 'individual:%' AND body ->> 'purge_on' IS NULL
  AND body ->> 'catalogue_item' IN ('court.dishonest_debtor', 'tax.major_violation',
      'hrss.wage_arrears', 'amr.admin_penalty', 'amr.abnormal_operation',
      'civil.activity_abnormal', 'staffing.report_overdue');
INSERT INTO purge_schedule (department, record_id, subject_key, purge_on)
SELECT department, record_id, subject_key, (body ->> 'purge_on')::date FROM records
WHERE body ->> 'purge_on' IS NOT NULL
ON CONFLICT (department, record_id) DO NOTHING;
