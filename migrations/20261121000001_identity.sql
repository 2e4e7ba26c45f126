-- People and their credentials: customers (phone + OTP), mitras and control-center users
-- (email + argon2id password), refresh tokens, one-time codes and push device tokens.

CREATE TABLE customers (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- E.164, e.g. +6281234567890. Never shown to mitras.
    phone           TEXT NOT NULL UNIQUE CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    -- The only name a mitra ever sees.
    call_name       TEXT NOT NULL DEFAULT '' CHECK (char_length(call_name) <= 50),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    deactivated_at  TIMESTAMPTZ
);

CREATE TABLE cc_users (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email           TEXT NOT NULL CHECK (email = lower(email) AND email LIKE '%_@_%'),
    display_name    TEXT NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 100),
    password_hash   TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role            TEXT NOT NULL DEFAULT 'operator' CHECK (role IN ('admin', 'operator')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    deactivated_at  TIMESTAMPTZ,
    CONSTRAINT cc_users_email_key UNIQUE (email)
);

CREATE TABLE mitras (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email           TEXT NOT NULL CHECK (email = lower(email) AND email LIKE '%_@_%'),
    -- The only name a customer ever sees ("bestie" name).
    display_name    TEXT NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 100),
    password_hash   TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    -- The mitra's own switch (POST /api/mitra/status). Kept here so presence can be rebuilt
    -- after Redis loses its data; a mitra is online only with this set AND a live socket.
    status_online   BOOLEAN NOT NULL DEFAULT false,
    created_by      UUID REFERENCES cc_users (id),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    deactivated_at  TIMESTAMPTZ,
    CONSTRAINT mitras_email_key UNIQUE (email)
);

-- One row per issued refresh token. Rotation marks the old row used and links its
-- successor; presenting a used token revokes its whole family.
CREATE TABLE refresh_tokens (
    id              UUID PRIMARY KEY,
    family_id       UUID NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('customer', 'mitra', 'cc')),
    customer_id     UUID REFERENCES customers (id) ON DELETE CASCADE,
    mitra_id        UUID REFERENCES mitras (id) ON DELETE CASCADE,
    cc_user_id      UUID REFERENCES cc_users (id) ON DELETE CASCADE,
    -- SHA-256 of the opaque token; the token itself is never stored.
    token_hash      BYTEA NOT NULL UNIQUE,
    issued_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ NOT NULL,
    used_at         TIMESTAMPTZ,
    replaced_by     UUID REFERENCES refresh_tokens (id),
    revoked_at      TIMESTAMPTZ,
    CONSTRAINT refresh_tokens_one_owner CHECK (
        (role = 'customer' AND customer_id IS NOT NULL AND mitra_id IS NULL AND cc_user_id IS NULL)
        OR (role = 'mitra' AND mitra_id IS NOT NULL AND customer_id IS NULL AND cc_user_id IS NULL)
        OR (role = 'cc' AND cc_user_id IS NOT NULL AND customer_id IS NULL AND mitra_id IS NULL)
    ),
    CONSTRAINT refresh_tokens_replaced_only_when_used CHECK (replaced_by IS NULL OR used_at IS NOT NULL)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_customer_idx ON refresh_tokens (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX refresh_tokens_mitra_idx ON refresh_tokens (mitra_id) WHERE mitra_id IS NOT NULL;
CREATE INDEX refresh_tokens_cc_user_idx ON refresh_tokens (cc_user_id) WHERE cc_user_id IS NOT NULL;

-- Customer sign-in codes: stored hashed, short-lived, burnt after too many wrong attempts.
CREATE TABLE otp_codes (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    phone           TEXT NOT NULL,
    code_hash       BYTEA NOT NULL,
    client_addr     TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts BETWEEN 0 AND 5),
    consumed_at     TIMESTAMPTZ,
    CHECK (expires_at > created_at)
);
CREATE INDEX otp_codes_phone_idx ON otp_codes (phone, created_at DESC);

-- Push tokens. One row per token: when an app re-registers a token it moves to the latest owner.
CREATE TABLE devices (
    fcm_token       TEXT PRIMARY KEY CHECK (char_length(fcm_token) BETWEEN 1 AND 4096),
    platform        TEXT NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
    customer_id     UUID REFERENCES customers (id) ON DELETE CASCADE,
    mitra_id        UUID REFERENCES mitras (id) ON DELETE CASCADE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT devices_one_owner CHECK (num_nonnulls(customer_id, mitra_id) = 1)
);
CREATE INDEX devices_customer_idx ON devices (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX devices_mitra_idx ON devices (mitra_id) WHERE mitra_id IS NOT NULL;
