-- Messages a service could not process, kept byte for byte (bytea: a key or value need not
-- be text, and PostgreSQL text refuses NUL). The dead-letter event names the row instead of
-- carrying the body, so it stays small whatever the message (shared/outbox.py). Kept until
-- an operator deletes them.
CREATE TABLE dead_letters (
    id          bigserial   PRIMARY KEY,
    service     text        NOT NULL,
    topic       text        NOT NULL,
    partition   int         NOT NULL,
    "offset"    bigint      NOT NULL,
    key         bytea,
    value       bytea       NOT NULL,
    reason      text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);

-- Outbox rows the broker refused for what they are (too large, a topic that does not exist
-- or may not be written, ...), moved here with the error so that the relay goes on with the
-- rest. `xinyong outbox list <service>` shows them, `xinyong outbox replay <service>` moves
-- them back to the outbox.
CREATE TABLE outbox_set_aside (
    id            bigserial   PRIMARY KEY,
    outbox_id     bigint      NOT NULL,
    event_id      text        NOT NULL,
    topic         text        NOT NULL,
    key           text,
    value         bytea       NOT NULL,
    created_at    timestamptz NOT NULL,
    error         text        NOT NULL,
    set_aside_at  timestamptz NOT NULL DEFAULT now()
);
