-- The latest accepted revision of every record: orders revisions (CONTRACT.md).
CREATE TABLE records (
    department  text        NOT NULL,
    record_id   text        NOT NULL,
    revision    int         NOT NULL,
    subject_key text        NOT NULL,
    action      text        NOT NULL,
    accepted_at timestamptz NOT NULL,
    PRIMARY KEY (department, record_id)
);

-- Every delivery and its fate: the audit trail of what each department sent and what it
-- was told. Nothing a department sends is dropped silently.
CREATE TABLE submissions (
    id           bigserial   PRIMARY KEY,
    department   text        NOT NULL,
    topic        text        NOT NULL,
    partition    int,
    "offset"     bigint,
    channel      text        NOT NULL,      -- kafka | http
    event_id     text,
    record_id    text,
    revision     int,
    status       text        NOT NULL,
    errors       json        NOT NULL DEFAULT '[]',
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX submissions_record ON submissions (department, record_id);
