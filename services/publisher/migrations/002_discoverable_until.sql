-- The last day a subject may be found (name search, full-code search): 9999-12-31 for
-- organizations, the end of the last public record's period for a person, NULL when nothing
-- about them is public. `discoverable` alone was decided when a snapshot arrived, so a person
-- stayed findable by name after their last record's period ended until another snapshot came.
ALTER TABLE subjects ADD COLUMN discoverable_until date;

-- Rows from before: organizations always; a person until the latest end of an active
-- record's period. The publisher also checks each search hit against the full rule (public
-- item, not about a minor), and the subject's next snapshot stores the exact date.
UPDATE subjects SET discoverable_until = '9999-12-31' WHERE type <> 'individual';
UPDATE subjects s SET discoverable_until = (
    SELECT max((r ->> 'public_until')::date)
    FROM json_array_elements(s.snapshot -> 'records') AS r
    WHERE r ->> 'status' = 'active' AND r ->> 'public_until' IS NOT NULL)
WHERE s.type = 'individual' AND s.discoverable;
