-- Credentials of every kind of party (shared/credentials.py): subjects and operators join
-- departments and agencies; tokens expire; a revocation may arrive for a token this
-- database never saw issued (credit.credentials is compacted: a service rebuilt from
-- nothing may find only the revocation), so everything but the id may be unknown.
ALTER TABLE credentials DROP CONSTRAINT credentials_party_kind_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_party_kind_check
    CHECK (party_kind IN ('department', 'agency', 'subject', 'operator'));
ALTER TABLE credentials ALTER COLUMN party_kind DROP NOT NULL,
                        ALTER COLUMN party DROP NOT NULL,
                        ALTER COLUMN secret_hash DROP NOT NULL,
                        ALTER COLUMN issued_at DROP NOT NULL;
ALTER TABLE credentials ADD COLUMN expires_at timestamptz;
