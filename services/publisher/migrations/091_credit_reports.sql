-- Credit reports (信用报告, issue 8 item 3): each report's PDF exactly as served, its sha256
-- and its verification code, so that verify's `sha256` is the served file's byte for byte.
-- `subject` is the subject as printed (masked); `records` the `department/record_id` of the
-- records it shows, so that the purge erases the reports that show an erased record.
CREATE TABLE credit_reports (
    report_id    uuid        PRIMARY KEY,
    code         text        NOT NULL UNIQUE,
    subject_key  text        NOT NULL,
    subject      json        NOT NULL,
    purpose      text        NOT NULL,
    own          boolean     NOT NULL,
    issued_at    timestamptz NOT NULL,
    data_as_of   timestamptz NOT NULL,
    records      text[]      NOT NULL,
    sha256       text        NOT NULL,
    pdf          bytea       NOT NULL
);
CREATE INDEX credit_reports_subject ON credit_reports (subject_key);
CREATE INDEX credit_reports_issued ON credit_reports (issued_at);
