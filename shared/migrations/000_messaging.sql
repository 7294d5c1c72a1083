-- The messaging tables every service has in its own database (shared/outbox.py, shared/inbox.py).

-- Transactional outbox: events written in the same transaction as the change that causes
-- them; the relay sends them and deletes them. A crash between send and delete resends an
-- event with the same id, which consumers drop (processed_events).
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    event_id    text        NOT NULL,
    topic       text        NOT NULL,
    key         text,
    value       bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Idempotent consumer, part 1: the next offset to apply per partition, advanced in the same
-- transaction as the effect, so a message redelivered by Kafka after a crash is skipped.
CREATE TABLE consumed_positions (
    topic       text   NOT NULL,
    partition   int    NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- Idempotent consumer, part 2: event ids already applied, so an event sent twice by its
-- producer (a relay resend, a department retry) takes effect once.
CREATE TABLE processed_events (
    source       text        NOT NULL,
    event_id     text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
);
CREATE INDEX processed_events_age ON processed_events (processed_at);
