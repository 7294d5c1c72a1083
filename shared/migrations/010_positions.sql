-- Positions that can be checked against the log they count (shared/positions.py): the Kafka
-- cluster and topic a position belongs to. Null on rows written before they were kept; the
-- worker fills them in the next time it checks the partition.
ALTER TABLE consumed_positions
    ADD COLUMN cluster_id text,
    ADD COLUMN topic_id   text,
    ADD COLUMN checked_at timestamptz;

-- Every mismatch found between a stored position and its log, and what became of it:
-- replayed at once, or paused until an operator resolves it (`./xinyong positions resolve`),
-- which the worker then carries out. `./xinyong status` and /readyz read it.
CREATE TABLE position_mismatches (
    id                bigserial   PRIMARY KEY,
    topic             text        NOT NULL,
    partition         int         NOT NULL,
    reason            text        NOT NULL CHECK (reason IN
                          ('new_cluster', 'new_topic', 'database_behind', 'gap', 'truncated')),
    action            text        NOT NULL CHECK (action IN ('replayed', 'paused')),
    detail            text        NOT NULL,
    stored_offset     bigint,
    stored_cluster_id text,
    stored_topic_id   text,
    cluster_id        text        NOT NULL,
    topic_id          text        NOT NULL,
    log_start         bigint      NOT NULL,
    log_end           bigint      NOT NULL,
    committed         bigint,
    detected_at       timestamptz NOT NULL DEFAULT now(),
    -- A paused partition: the operator's choice, then when the worker carried it out and
    -- from which offset consumption resumed. A replay is carried out when it is found.
    resolution        text        CHECK (resolution IN ('from-start', 'from-end', 'from-stored')),
    resolved_at       timestamptz,
    resumed_at        timestamptz,
    resumed_from      bigint,
    CHECK (action = 'paused' OR resumed_at IS NOT NULL)
);
-- At most one partition hold open at a time.
CREATE UNIQUE INDEX position_mismatches_open ON position_mismatches (topic, partition)
    WHERE action = 'paused' AND resumed_at IS NULL;
CREATE INDEX position_mismatches_recent ON position_mismatches (detected_at);
