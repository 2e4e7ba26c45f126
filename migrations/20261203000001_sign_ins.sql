-- Sign-ins (refresh-token families) whose access tokens are refused before their expiry: a
-- spent refresh token presented again revokes its whole sign-in. And, per account, a
-- "not valid before" instant: a password reset or a deactivation refuses every access token
-- issued earlier (a reactivation does not bring them back). Like revoked_access_tokens, the
-- record that is copied back into Redis when Redis lost its data; a row is useless once the
-- access tokens it concerns have expired (`expires_at`), and each write deletes those.
CREATE TABLE revoked_sign_ins (
    sign_in     UUID PRIMARY KEY,
    user_id     UUID NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX revoked_sign_ins_expires_at_idx ON revoked_sign_ins (expires_at);

CREATE TABLE account_not_valid_before (
    user_id        UUID PRIMARY KEY,
    -- unix milliseconds, compared with an access token's `iat_ms`
    not_before_ms  BIGINT NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX account_not_valid_before_expires_at_idx ON account_not_valid_before (expires_at);

-- A refresh-token family ends at an absolute time however often it rotates
-- (auth.refresh_token_max_lifetime_s): each successor inherits it.
ALTER TABLE refresh_tokens ADD COLUMN family_expires_at TIMESTAMPTZ;

-- A push token belongs to the sign-in that registered it: logging out (or the sign-in being
-- revoked) unregisters it, so a signed-out phone receives nothing more for that account.
-- NULL for tokens registered before this column.
ALTER TABLE devices ADD COLUMN sign_in UUID;
CREATE INDEX devices_sign_in_idx ON devices (sign_in) WHERE sign_in IS NOT NULL;

-- Chat pushes show the message text only when an operator turns this on.
INSERT INTO app_config (key, value) VALUES ('push_message_previews', 'false') ON CONFLICT (key) DO NOTHING;
