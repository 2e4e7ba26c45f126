-- Access tokens revoked before their expiry (logout). Redis holds the list every request
-- checks; this is its record, copied back into Redis when Redis lost its data (with the
-- deactivated mitras, whose record is `mitras.deactivated_at`). A row is useless once its
-- token has expired: each logout deletes those.
CREATE TABLE revoked_access_tokens (
    token_id    UUID PRIMARY KEY,
    user_id     UUID NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_at_idx ON revoked_access_tokens (expires_at);
