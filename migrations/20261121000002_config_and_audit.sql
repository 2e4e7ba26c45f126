-- Run-time marketplace settings (edited from the control center) and the audit log of
-- every operator action.

CREATE TABLE app_config (
    key             TEXT PRIMARY KEY,
    value           JSONB NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by      UUID REFERENCES cc_users (id)
);

-- Defaults of every key in domain::app_config::KEYS (a test keeps the two equal).
INSERT INTO app_config (key, value) VALUES
    ('price_tiers', '[{"id": "test-1m", "duration_minutes": 1, "price": 1000},
                      {"id": "15m", "duration_minutes": 15, "price": 15000},
                      {"id": "30m", "duration_minutes": 30, "price": 25000},
                      {"id": "60m", "duration_minutes": 60, "price": 45000}]'),
    ('free_trial_enabled', 'true'),
    ('free_trial_duration_minutes', '15'),
    ('max_customers_per_mitra', '3'),
    ('pairing_blast_timeout_seconds', '60'),
    ('payment_session_timeout_minutes', '20'),
    ('returning_chat_confirmation_timeout_seconds', '20'),
    ('extension_timeout_seconds', '10'),
    ('extension_default_action_on_timeout', '"auto_approve"'),
    ('early_end_mitra_enabled', 'false'),
    ('early_end_customer_enabled', 'false'),
    ('early_end_mitra_daily_cap', '3'),
    ('closing_grace_minutes', '5'),
    ('session_ending_warning_seconds', '60')
ON CONFLICT (key) DO NOTHING;

-- Who did what, when: config changes (old -> new), failed-pairing actions, account changes.
CREATE TABLE audit_log (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cc_user_id      UUID REFERENCES cc_users (id),
    action          TEXT NOT NULL CHECK (action ~ '^[a-z_.]+$'),
    target_type     TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    old_value       JSONB,
    new_value       JSONB,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id, created_at DESC);
CREATE INDEX audit_log_created_idx ON audit_log (created_at DESC);
