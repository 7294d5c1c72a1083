-- The records ingest accepted (credit.records.accepted), as far as objections need them: an
-- objection or repair request must name a record that exists and the subject it is about.
-- The latest revision wins; a withdrawal (by the department, or by an upheld objection)
-- keeps the row, marked withdrawn.
CREATE TABLE known_records (
    department     text    NOT NULL,
    record_id      text    NOT NULL,
    subject_type   text    NOT NULL,
    subject_id     text    NOT NULL,
    revision       int     NOT NULL,
    catalogue_item text,
    withdrawn      boolean NOT NULL,
    PRIMARY KEY (department, record_id)
);
