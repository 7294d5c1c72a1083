-- The lifecycle of credit information (shared/purge.py, shared/sweeps.py), in every service's
-- database.

-- What this service holds that must be erased, and when: one row per record of a person's
-- negative information (征信业管理条例 art. 16: 5 years after the act ended), written by the
-- service as it stores the record. The purge sweep erases what is due, subject by subject.
CREATE TABLE purge_schedule (
    department   text NOT NULL,
    record_id    text NOT NULL,
    subject_key  text NOT NULL,
    purge_on     date NOT NULL,
    PRIMARY KEY (department, record_id)
);
CREATE INDEX purge_schedule_due ON purge_schedule (purge_on, subject_key);
CREATE INDEX purge_schedule_subject ON purge_schedule (subject_key);

-- What was erased: a keyed hash of the reference (a record, an objection, a subject) and
-- dates, nothing personal. A replay, a redelivery or a restored backup that would bring an
-- erased record back is recognized by it and dropped. `counters` lets a subject recorded
-- again later continue its numbering (snapshot versions, list entries), so that no new event
-- reuses an id of the erased past.
CREATE TABLE erasure_ledger (
    reference    text        PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('record', 'objection', 'subject')),
    purge_on     date        NOT NULL,
    erased_at    timestamptz NOT NULL DEFAULT now(),
    counters     jsonb       NOT NULL DEFAULT '{}'
);

-- Items a sweep could not handle: dead-lettered once with the reason, skipped for the rest of
-- the day (Zhuhai date), tried again the next.
CREATE TABLE sweep_failures (
    sweep      text        NOT NULL,
    item       text        NOT NULL,
    failed_on  date        NOT NULL,
    reason     text        NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sweep, item, failed_on)
);
