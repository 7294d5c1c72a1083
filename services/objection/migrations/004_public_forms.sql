-- Who asked (the SHA-256 of the contact in its normal form, services/objection/domain.py),
-- and which revision of the record was disputed.
ALTER TABLE objections ADD COLUMN requester text, ADD COLUMN revision int;

-- One open objection (and one open repair request) per record and requester; concurrent
-- duplicates are refused by the index itself.
CREATE UNIQUE INDEX objections_one_open ON objections (kind, department, record_id, requester)
    WHERE status = 'routed';

-- Rate limits of the public forms, shared by every process of the service: one row per
-- bucket ("client:<address>", "record:<department>/<record id>") and fixed window, its
-- count raised by an upsert; rows are deleted once their window has ended.
CREATE TABLE rate_windows (
    bucket       text        NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    hits         int         NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_windows_end ON rate_windows (window_end);
