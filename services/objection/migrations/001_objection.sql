-- Objections (异议) and repair requests (信用修复), routed to the department that owns the
-- record, with their statutory deadline.
CREATE TABLE objections (
    objection_id  uuid        PRIMARY KEY,
    kind          text        NOT NULL CHECK (kind IN ('objection', 'repair')),
    subject_key   text        NOT NULL,
    subject       jsonb       NOT NULL,
    department    text        NOT NULL,
    record_id     text        NOT NULL,
    reason        text        NOT NULL,
    contact       text        NOT NULL,
    token_hash    text        NOT NULL,   -- sha256 of the access token; the token is not kept
    status        text        NOT NULL CHECK (status IN ('routed', 'upheld', 'rejected')),
    due_by        date        NOT NULL,
    received_at   timestamptz NOT NULL,
    decided_at    timestamptz
);
CREATE INDEX objections_record ON objections (department, record_id);

-- What happened to each objection, in order: its timeline.
CREATE TABLE objection_events (
    id            bigserial   PRIMARY KEY,
    objection_id  uuid        NOT NULL REFERENCES objections,
    status        text        NOT NULL,
    note          text,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX objection_events_objection ON objection_events (objection_id, id);
