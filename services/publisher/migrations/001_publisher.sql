-- The latest archive snapshot of every subject, for list rules and the public site.
CREATE TABLE subjects (
    subject_key  text        PRIMARY KEY,
    type         text        NOT NULL,
    id           text        NOT NULL,
    name         text,
    version      bigint      NOT NULL,
    -- json, not jsonb: stored and read whole, never queried inside; json skips the parse.
    snapshot     json        NOT NULL,     -- shared.contract.SubjectChanged
    discoverable boolean     NOT NULL,     -- may appear in public name search
    name_norm    text        NOT NULL DEFAULT '',
    name_grams   text[]      NOT NULL DEFAULT '{}',
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subjects_name_grams ON subjects USING gin (name_grams);
CREATE INDEX subjects_id ON subjects (id);

-- Entries on red and black lists, from the notice period (pending) to exit.
CREATE TABLE list_entries (
    entry_id     uuid        PRIMARY KEY,
    list         text        NOT NULL,
    subject_key  text        NOT NULL REFERENCES subjects,
    status       text        NOT NULL CHECK (status IN ('pending', 'active', 'exited', 'cancelled')),
    basis        jsonb       NOT NULL,
    publish_at   timestamptz,
    since        date,
    until        date,
    exit_reason  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX list_entries_one_open ON list_entries (list, subject_key)
    WHERE status IN ('pending', 'active');
CREATE INDEX list_entries_subject ON list_entries (subject_key);
CREATE INDEX list_entries_pending ON list_entries (publish_at) WHERE status = 'pending';
CREATE INDEX list_entries_active ON list_entries (list, until) WHERE status = 'active';

-- Every entry (ADD), change (MOD) and exit (DEL) of every list, in order: the changes feed.
CREATE TABLE list_changes (
    seq          bigserial   PRIMARY KEY,
    list         text        NOT NULL,
    op           text        NOT NULL CHECK (op IN ('ADD', 'MOD', 'DEL')),
    entry_id     uuid        NOT NULL,
    subject_key  text        NOT NULL,
    body         json        NOT NULL,     -- shared.contract.ListChanged
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX list_changes_list ON list_changes (list, seq);

-- Joint reward and penalty notices and what the agency reported back (closed loop).
CREATE TABLE notices (
    notice_id       uuid        PRIMARY KEY,
    agency          text        NOT NULL,
    kind            text        NOT NULL,
    list            text        NOT NULL,
    measure         text        NOT NULL,
    entry_id        uuid        NOT NULL REFERENCES list_entries,
    subject_key     text        NOT NULL,
    revokes         uuid,
    body            json        NOT NULL,  -- shared.contract.Notice
    issued_at       timestamptz NOT NULL,
    feedback_status text,
    feedback_note   text,
    feedback_at     timestamptz
);
CREATE INDEX notices_entry ON notices (entry_id);
CREATE INDEX notices_agency ON notices (agency, issued_at);
