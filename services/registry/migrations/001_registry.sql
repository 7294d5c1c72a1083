-- One credit archive per subject (信用档案).
CREATE TABLE subjects (
    subject_key text        PRIMARY KEY,
    type        text        NOT NULL,
    id          text        NOT NULL,
    name        text,
    version     bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE records (
    department   text        NOT NULL,
    record_id    text        NOT NULL,
    subject_key  text        NOT NULL REFERENCES subjects,
    revision     int         NOT NULL,
    -- json, not jsonb: stored and read whole, never queried inside; json skips the parse.
    body         json        NOT NULL,    -- shared.contract.ArchivedRecord
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (department, record_id)
);
CREATE INDEX records_subject ON records (subject_key);

-- Every change of every record, in order: the archive's audit trail.
CREATE TABLE record_history (
    id          bigserial   PRIMARY KEY,
    department  text        NOT NULL,
    record_id   text        NOT NULL,
    revision    int         NOT NULL,
    cause       text        NOT NULL,     -- submission | flag | unflag | withdraw | repair
    event_id    text        NOT NULL,
    body        json        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX record_history_record ON record_history (department, record_id);
