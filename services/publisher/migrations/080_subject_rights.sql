-- The subject's rights (issue 7): telling a subject before it is listed, its own view of its
-- archive (/api/v1/me) and the log of who looked at its public profile.

-- A subject's bearer token names it by a keyed hash of its subject key (shared/credentials.py
-- `subject_party`): this maps the hash back, for the subjects this service knows. `key_id`
-- names the key that made it, so that rows of a rotated key are made again.
CREATE TABLE subject_parties (
    party        text PRIMARY KEY,
    subject_key  text NOT NULL,
    key_id       text NOT NULL
);
CREATE INDEX subject_parties_subject ON subject_parties (subject_key);

-- A contact the subject set itself (PUT /api/v1/me/contact): kept by its token's party, so
-- that it can be set before Xinyong holds anything about the subject.
CREATE TABLE subject_contacts (
    party        text        PRIMARY KEY,
    subject_key  text,
    contact      text        NOT NULL,
    set_at       timestamptz NOT NULL
);
CREATE INDEX subject_contacts_subject ON subject_contacts (subject_key);

-- Who looked at a subject's public profile (web, API, a full-code search landing on it) or
-- took a report about it: newest first per subject. The address is masked (IPv4 /24,
-- IPv6 /48) before it is stored.
CREATE TABLE query_log (
    id           bigserial   PRIMARY KEY,
    subject_key  text        NOT NULL,
    at           timestamptz NOT NULL,
    channel      text        NOT NULL CHECK (channel IN ('web', 'api', 'report')),
    purpose      text,
    address      text
);
CREATE INDEX query_log_subject ON query_log (subject_key, id DESC);

-- An entry of a list that Xinyong announces waits for its notification (publish_at stays
-- NULL until then); an objection about a basis record holds it (`held`) until decided.
ALTER TABLE list_entries ADD COLUMN held boolean NOT NULL DEFAULT false;

CREATE TABLE notifications (
    notification_id     uuid        PRIMARY KEY,
    entry_id            uuid        NOT NULL UNIQUE REFERENCES list_entries,
    subject_key         text        NOT NULL,
    list                text        NOT NULL,
    status              text        NOT NULL
                        CHECK (status IN ('to_deliver', 'delivered', 'announced', 'cancelled')),
    created_at          timestamptz NOT NULL,
    next_attempt_at     timestamptz,
    attempts            int         NOT NULL DEFAULT 0,
    notified_at         timestamptz,
    channel             text,
    planned_publication date,
    object_by           date,
    body                json        -- shared.contract.SubjectNotified, once made
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'to_deliver';
CREATE INDEX notifications_subject ON notifications (subject_key);
CREATE INDEX notifications_announced ON notifications (list, notified_at)
    WHERE status = 'announced';

-- Every attempt to deliver a notification: the delivery log.
CREATE TABLE notification_deliveries (
    id               bigserial   PRIMARY KEY,
    notification_id  uuid        NOT NULL REFERENCES notifications,
    subject_key      text        NOT NULL,
    at               timestamptz NOT NULL,
    channel          text,
    contact_masked   text,
    outcome          text        NOT NULL CHECK (outcome IN ('delivered', 'failed')),
    error            text
);
CREATE INDEX notification_deliveries_notification ON notification_deliveries
    (notification_id, id);

-- The subject's objections, repair requests and complaints as the objection service says
-- they stand (credit.requests.changed): the highest version wins.
CREATE TABLE subject_requests (
    request_id   uuid        PRIMARY KEY,
    subject_key  text        NOT NULL,
    kind         text        NOT NULL,
    version      int         NOT NULL,
    body         json        NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subject_requests_subject ON subject_requests (subject_key);
