-- The stats service's facts: one row per event it consumed, idempotent by what names the
-- event. Official figures are SQL over these rows, exact and recomputable for any period.

-- Every delivery's verdict (credit.feedback.<dept>): submissions, accepted, rejected by
-- error code, duplicates, stale.
CREATE TABLE feedback_facts (
    event_id     text        PRIMARY KEY,   -- the feedback event's id
    department   text        NOT NULL,
    status       text        NOT NULL,
    error_codes  text[]      NOT NULL DEFAULT '{}',
    record_id    text,
    revision     int,
    at           timestamptz NOT NULL       -- when ingest gave the verdict
);
CREATE INDEX feedback_facts_month ON feedback_facts (department, at);

-- Every accepted revision (credit.records.accepted).
CREATE TABLE record_facts (
    department     text        NOT NULL,
    record_id      text        NOT NULL,
    revision       int         NOT NULL,
    action         text        NOT NULL,
    catalogue_item text,
    subject_type   text        NOT NULL,
    district       text,
    decided_on     date,
    accepted_at    timestamptz NOT NULL,
    event_id       text        NOT NULL,
    PRIMARY KEY (department, record_id, revision)
);
CREATE INDEX record_facts_decided ON record_facts (decided_on);
CREATE INDEX record_facts_accepted ON record_facts (accepted_at);

-- Every list entry, change and exit (credit.lists.changed).
CREATE TABLE list_facts (
    event_id     text        PRIMARY KEY,
    list         text        NOT NULL,
    kind         text        NOT NULL,      -- black | red (the catalogue's, when received)
    op           text        NOT NULL,
    entry_id     uuid        NOT NULL,
    subject_type text        NOT NULL,
    since        date        NOT NULL,
    basis        jsonb       NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX list_facts_since ON list_facts (since) WHERE op = 'ADD';

-- Objections and repair requests routed (credit.objections.<dept>) and decided
-- (credit.objections.closed).
CREATE TABLE objection_facts (
    objection_id text        PRIMARY KEY,
    kind         text        NOT NULL,
    department   text        NOT NULL,
    record_id    text        NOT NULL,
    due_by       date        NOT NULL,
    received_at  timestamptz NOT NULL
);
CREATE INDEX objection_facts_month ON objection_facts (department, received_at);
CREATE TABLE objection_closed_facts (
    objection_id text        PRIMARY KEY,
    kind         text        NOT NULL,
    department   text        NOT NULL,
    decision     text        NOT NULL,
    due_by       date        NOT NULL,
    decided_at   timestamptz NOT NULL
);
CREATE INDEX objection_closed_month ON objection_closed_facts (department, decided_at);

-- Early warning: what each record counts for now (rule, district, day), and every delta
-- sent to credit.stats.deltas because of it (+1 counted, -1 no longer).
CREATE TABLE warning_counted (
    department   text        NOT NULL,
    record_id    text        NOT NULL,
    rule         text        NOT NULL,
    district     text        NOT NULL,
    "on"         timestamptz NOT NULL,
    revision     int         NOT NULL,
    PRIMARY KEY (department, record_id, rule)
);
CREATE TABLE deltas (
    fact_id      text        PRIMARY KEY,
    district     text        NOT NULL,
    measure      text        NOT NULL,
    "on"         timestamptz NOT NULL,
    delta        int         NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deltas_window ON deltas (measure, district, "on");

-- What stats-windows says (credit.stats.windows and .warnings, compacted): each window's
-- last count, and each warning's last state.
CREATE TABLE windows (
    district     text        NOT NULL,
    measure      text        NOT NULL,
    window_from  timestamptz NOT NULL,
    window_to    timestamptz NOT NULL,
    count        int         NOT NULL,
    threshold    int         NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (district, measure, window_from)
);
CREATE TABLE warnings (
    district     text        NOT NULL,
    measure      text        NOT NULL,
    window_from  timestamptz NOT NULL,
    window_to    timestamptz NOT NULL,
    count        int         NOT NULL,
    threshold    int         NOT NULL,
    status       text        NOT NULL CHECK (status IN ('raised', 'cleared')),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (district, measure, window_from)
);
CREATE INDEX warnings_raised ON warnings (window_to) WHERE status = 'raised';
