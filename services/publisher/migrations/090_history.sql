-- The past of each public profile (issue 8, `as_of`): every snapshot version with the time
-- it took effect here, and every state a list entry went through. Written in the same
-- transaction as the snapshot or entry (services/publisher/store.py), read by the as-of
-- profile; never rebuilt from Kafka. The purge erases from both (services/publisher/sweeps.py).
CREATE TABLE subject_versions (
    subject_key   text        NOT NULL,
    version       bigint      NOT NULL,
    effective_at  timestamptz NOT NULL,
    -- json, not jsonb: the snapshot as received, stored and read whole.
    snapshot      json        NOT NULL,     -- shared.contract.SubjectChanged
    PRIMARY KEY (subject_key, version)
);
CREATE INDEX subject_versions_at ON subject_versions (subject_key, effective_at DESC);

CREATE TABLE entry_history (
    id           bigserial   PRIMARY KEY,
    entry_id     uuid        NOT NULL,
    subject_key  text        NOT NULL,
    list         text        NOT NULL,
    status       text        NOT NULL,
    since        date,
    until        date,
    basis        jsonb       NOT NULL,
    at           timestamptz NOT NULL
);
CREATE INDEX entry_history_subject ON entry_history (subject_key, at);
CREATE INDEX entry_history_entry ON entry_history (entry_id);

-- History begins with what is stored now: each subject's current snapshot from the time it
-- was stored, each entry's current state from its last change.
INSERT INTO subject_versions (subject_key, version, effective_at, snapshot)
SELECT subject_key, version, updated_at, snapshot FROM subjects;
INSERT INTO entry_history (entry_id, subject_key, list, status, since, until, basis, at)
SELECT entry_id, subject_key, list, status, since, until, basis, updated_at FROM list_entries;
