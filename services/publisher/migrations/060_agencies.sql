-- Agencies over HTTP (CONTRACT.md): every notice sent, in order, whatever the topic's
-- retention, with its feedback deadline; every answer an agency gave.

-- Insertion order, filled by the existing INSERT without naming it.
ALTER TABLE notices ADD COLUMN written bigserial;
-- The notice's place in the agencies' history. Given after the notice's transaction has
-- committed, by one sequencer at a time (services/publisher/history.py), so that a cursor
-- never passes a notice that commits later under a lower number: a bigserial given at
-- insert would (worker, list timer and HTTP write concurrently).
ALTER TABLE notices ADD COLUMN seq bigint;
-- The day by which the agency reports `applied` or `not_applicable`: the issue day (CST) plus
-- the measure's `feedback_within` working days (shared/clock.py); `due_provisional` when
-- counted past the published holiday schedule.
ALTER TABLE notices ADD COLUMN due_by date;
ALTER TABLE notices ADD COLUMN due_provisional boolean NOT NULL DEFAULT false;

-- Notices from before: numbered in the order they were issued.
UPDATE notices n SET seq = o.seq
FROM (SELECT notice_id, row_number() OVER (ORDER BY issued_at, written) AS seq FROM notices) o
WHERE n.notice_id = o.notice_id;

CREATE UNIQUE INDEX notices_seq ON notices (seq);
CREATE INDEX notices_agency_seq ON notices (agency, seq);
CREATE INDEX notices_unsequenced ON notices (written) WHERE seq IS NULL;
CREATE INDEX notices_undated ON notices (written) WHERE due_by IS NULL;
CREATE INDEX notices_awaiting ON notices (agency, due_by)
    WHERE feedback_status IS NULL OR feedback_status = 'received';

-- Every answer an agency gave about a notice, over Kafka or HTTP, and what it did: feedback
-- only moves forward (received -> applied | not_applicable), a backward one is kept here
-- and changes nothing.
CREATE TABLE notice_feedback_history (
    id          bigserial   PRIMARY KEY,
    notice_id   uuid        NOT NULL,
    agency      text        NOT NULL,
    status      text        NOT NULL,
    note        text,
    channel     text        NOT NULL CHECK (channel IN ('kafka', 'http')),
    event_id    text,
    outcome     text        NOT NULL CHECK (outcome IN ('applied', 'repeated', 'refused')),
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notice_feedback_history_notice ON notice_feedback_history (notice_id, id);

-- Notices following the catalogue: per catalogue version, how far the reconciliation of
-- open entries with the catalogue's measures went (resumable, batch by batch).
CREATE TABLE catalogue_sync (
    version      text        PRIMARY KEY,
    after_entry  uuid,
    sent         int         NOT NULL DEFAULT 0,
    revoked      int         NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz
);
