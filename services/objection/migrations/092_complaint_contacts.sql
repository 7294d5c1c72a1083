-- A complaint's contact (and its hash, the requester) is erased a while after the answer,
-- as an objection's is (docs/decisions.md, "A complaint's contact is erased too").
ALTER TABLE complaints ALTER COLUMN contact DROP NOT NULL,
                       ALTER COLUMN requester DROP NOT NULL,
                       ADD COLUMN contact_erased_at timestamptz;
