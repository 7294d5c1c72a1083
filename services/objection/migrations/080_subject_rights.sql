-- The subject's rights (issue 7): credit repair under NDRC Order 36, complaints, and what the
-- subject's own view (/api/v1/me, served by the publisher) is told of its requests.

-- Each record as the registry's latest snapshot shows it (credit.subjects.changed): a repair
-- request is judged on the registry's own `repair_from` and `public_until`. A higher
-- revision wins; at one revision, a later snapshot of the same subject (a flag, a repair).
CREATE TABLE record_facts (
    department     text    NOT NULL,
    record_id      text    NOT NULL,
    subject_key    text    NOT NULL,
    revision       int     NOT NULL,
    version        bigint  NOT NULL,
    status         text    NOT NULL,
    catalogue_item text    NOT NULL,
    repair_from    date,
    public_until   date,
    PRIMARY KEY (department, record_id)
);

-- A repair request carries the signed commitment and the obligations declared performed;
-- the result is passed on once the registry shows the record repaired.
ALTER TABLE objections
    ADD COLUMN commitment   jsonb,
    ADD COLUMN obligations  jsonb,
    ADD COLUMN result_by    date,
    ADD COLUMN passed_on_at timestamptz;
CREATE INDEX IF NOT EXISTS objections_subject ON objections (subject_key);  -- also 070
CREATE INDEX objections_awaiting_pass_on ON objections (department, record_id)
    WHERE kind = 'repair' AND status = 'upheld' AND passed_on_at IS NULL;

-- Complaints (投诉, 征信业管理条例 art. 26): about a record, an objection, a list entry or
-- the system; routed to the department concerned, or to the operators (department NULL).
CREATE TABLE complaints (
    complaint_id  uuid        PRIMARY KEY,
    about_kind    text        NOT NULL
                  CHECK (about_kind IN ('record', 'objection', 'list_entry', 'system')),
    about         jsonb       NOT NULL,
    about_key     text        NOT NULL,
    subject_key   text,                  -- NULL for a complaint about the system
    subject       jsonb,
    department    text,                  -- NULL: answered by the operators
    text          text        NOT NULL,
    contact       text        NOT NULL,
    requester     text        NOT NULL,  -- SHA-256 of the contact's normal form
    token_hash    text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('routed', 'answered')),
    due_by        date        NOT NULL,
    received_at   timestamptz NOT NULL,
    answered_at   timestamptz,
    answered_by   text,
    answer        text,
    overdue_at    timestamptz
);
CREATE UNIQUE INDEX complaints_one_open ON complaints (about_key, requester)
    WHERE status = 'routed';
CREATE INDEX complaints_open ON complaints (due_by) WHERE status = 'routed';
CREATE INDEX complaints_subject ON complaints (subject_key);

CREATE TABLE complaint_events (
    id            bigserial   PRIMARY KEY,
    complaint_id  uuid        NOT NULL REFERENCES complaints,
    status        text        NOT NULL,
    note          text,
    at            timestamptz NOT NULL
);
CREATE INDEX complaint_events_complaint ON complaint_events (complaint_id, id);

-- The list entries the publisher announced (credit.lists.changed): a complaint about an
-- entry must name one, and the subject it is about.
CREATE TABLE known_entries (
    entry_id     uuid    PRIMARY KEY,
    list         text    NOT NULL,
    subject_key  text    NOT NULL
);
