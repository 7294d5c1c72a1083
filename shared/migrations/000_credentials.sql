-- Bearer credentials of departments and agencies (shared/credentials.py), kept by each
-- service that authenticates them, fed from the credit.credentials topic.
CREATE TABLE credentials (
    token_id     text        PRIMARY KEY,
    party_kind   text        NOT NULL CHECK (party_kind IN ('department', 'agency')),
    party        text        NOT NULL,
    secret_hash  text        NOT NULL,
    issued_at    timestamptz NOT NULL,
    revoked_at   timestamptz
);
