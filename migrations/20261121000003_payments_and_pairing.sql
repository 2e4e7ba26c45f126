-- Money and matchmaking: payment sessions, charges, pairing requests (general blast and
-- returning chat), the per-mitra activity log and the failure ledger operators review.

CREATE TABLE payment_sessions (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id         UUID NOT NULL REFERENCES customers (id),
    purpose             TEXT NOT NULL DEFAULT 'chat' CHECK (purpose IN ('chat', 'extension')),
    -- The session an extension payment extends (purpose = 'extension'); FK added below.
    chat_session_id     UUID,
    tier_id             TEXT,
    duration_minutes    INTEGER NOT NULL CHECK (duration_minutes BETWEEN 1 AND 240),
    -- Whole rupiah.
    amount              BIGINT NOT NULL CHECK (amount >= 0),
    is_free_trial       BOOLEAN NOT NULL DEFAULT false,
    -- Set for "Curhat lagi": the mitra the customer asked for again.
    targeted_mitra_id   UUID REFERENCES mitras (id),
    status              TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'confirmed', 'consumed', 'failed_pairing', 'abandoned', 'expired')),
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at          TIMESTAMPTZ NOT NULL,
    confirmed_at        TIMESTAMPTZ,
    consumed_at         TIMESTAMPTZ,
    -- When a final state (consumed, failed_pairing, abandoned, expired) was reached.
    resolved_at         TIMESTAMPTZ,
    CHECK (expires_at > created_at),
    CONSTRAINT payment_sessions_extension_names_session
        CHECK ((purpose = 'extension') = (chat_session_id IS NOT NULL)),
    CONSTRAINT payment_sessions_trial_is_free_and_never_an_extension
        CHECK (NOT is_free_trial OR (amount = 0 AND purpose = 'chat')),
    CONSTRAINT payment_sessions_extension_not_targeted
        CHECK (purpose = 'chat' OR targeted_mitra_id IS NULL),
    CONSTRAINT payment_sessions_confirmed_at_matches_status
        CHECK ((confirmed_at IS NOT NULL) = (status IN ('confirmed', 'consumed', 'failed_pairing'))),
    CONSTRAINT payment_sessions_consumed_at_matches_status
        CHECK ((consumed_at IS NOT NULL) = (status = 'consumed')),
    CONSTRAINT payment_sessions_resolved_at_matches_status
        CHECK ((resolved_at IS NOT NULL) = (status IN ('consumed', 'failed_pairing', 'abandoned', 'expired')))
);
CREATE INDEX payment_sessions_customer_idx ON payment_sessions (customer_id, created_at DESC);
-- The sweep's work list.
CREATE INDEX payment_sessions_open_expiry_idx ON payment_sessions (expires_at)
    WHERE status IN ('pending', 'confirmed');
-- At most one free trial in use per customer. A trial whose pairing failed is given back.
CREATE UNIQUE INDEX payment_sessions_one_free_trial_idx ON payment_sessions (customer_id)
    WHERE is_free_trial AND status IN ('confirmed', 'consumed');

-- Calls to the payment provider. At most one successful charge per payment session.
CREATE TABLE charges (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    payment_session_id  UUID NOT NULL REFERENCES payment_sessions (id),
    amount              BIGINT NOT NULL CHECK (amount >= 0),
    provider            TEXT NOT NULL,
    provider_ref        TEXT,
    status              TEXT NOT NULL CHECK (status IN ('succeeded', 'failed')),
    failure_reason      TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((status = 'failed') = (failure_reason IS NOT NULL))
);
CREATE UNIQUE INDEX charges_one_success_per_payment_idx ON charges (payment_session_id)
    WHERE status = 'succeeded';

CREATE TABLE pairing_requests (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    payment_session_id  UUID NOT NULL REFERENCES payment_sessions (id),
    customer_id         UUID NOT NULL REFERENCES customers (id),
    request_type        TEXT NOT NULL CHECK (request_type IN ('general', 'returning')),
    targeted_mitra_id   UUID REFERENCES mitras (id),
    status              TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'accepted', 'failed', 'cancelled')),
    failure_cause       TEXT CHECK (failure_cause IN (
        'no_mitra_available', 'all_mitras_rejected', 'targeted_mitra_offline',
        'targeted_mitra_rejected', 'targeted_mitra_timeout', 'payment_session_expired',
        'customer_cancelled')),
    accepted_mitra_id   UUID REFERENCES mitras (id),
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at          TIMESTAMPTZ NOT NULL,
    resolved_at         TIMESTAMPTZ,
    CHECK (expires_at > created_at),
    CONSTRAINT pairing_requests_returning_is_targeted
        CHECK ((request_type = 'returning') = (targeted_mitra_id IS NOT NULL)),
    CONSTRAINT pairing_requests_accepted_names_mitra
        CHECK ((status = 'accepted') = (accepted_mitra_id IS NOT NULL)),
    CONSTRAINT pairing_requests_failure_has_cause
        CHECK ((status IN ('failed', 'cancelled')) = (failure_cause IS NOT NULL)),
    CONSTRAINT pairing_requests_cancel_cause
        CHECK (status <> 'cancelled' OR failure_cause = 'customer_cancelled'),
    CONSTRAINT pairing_requests_resolved_at_matches_status
        CHECK ((status = 'pending') = (resolved_at IS NULL))
);
-- One search at a time per payment, and a payment pairs at most once.
CREATE UNIQUE INDEX pairing_requests_one_pending_per_payment_idx ON pairing_requests (payment_session_id)
    WHERE status = 'pending';
CREATE UNIQUE INDEX pairing_requests_one_accept_per_payment_idx ON pairing_requests (payment_session_id)
    WHERE status = 'accepted';
CREATE INDEX pairing_requests_customer_idx ON pairing_requests (customer_id, created_at DESC);
CREATE INDEX pairing_requests_pending_expiry_idx ON pairing_requests (expires_at) WHERE status = 'pending';

-- One row per mitra notified of a request: the mitra request-activity log.
CREATE TABLE chat_request_notifications (
    id                      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pairing_request_id      UUID NOT NULL REFERENCES pairing_requests (id) ON DELETE CASCADE,
    mitra_id                UUID NOT NULL REFERENCES mitras (id),
    notified_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The mitra's active sessions when notified.
    active_session_count    INTEGER NOT NULL CHECK (active_session_count >= 0),
    -- Whether a push went out because the mitra had no live socket.
    pushed                  BOOLEAN NOT NULL DEFAULT false,
    -- NULL while the request is open.
    response                TEXT CHECK (response IN ('accepted', 'rejected', 'ignored', 'missed')),
    -- Set only when the mitra acted (accepted or rejected).
    responded_at            TIMESTAMPTZ,
    CONSTRAINT chat_request_notifications_once_per_mitra UNIQUE (pairing_request_id, mitra_id),
    CONSTRAINT chat_request_notifications_responded_at_matches_response CHECK (
        CASE WHEN response IN ('accepted', 'rejected') THEN responded_at IS NOT NULL
             ELSE responded_at IS NULL END)
);
-- First accept wins: a second 'accepted' row for the same request cannot exist.
CREATE UNIQUE INDEX chat_request_notifications_one_accept_idx ON chat_request_notifications (pairing_request_id)
    WHERE response = 'accepted';
CREATE INDEX chat_request_notifications_mitra_idx ON chat_request_notifications (mitra_id, notified_at);
CREATE INDEX chat_request_notifications_notified_idx ON chat_request_notifications (notified_at);

-- Every payment that did not lead to a chat, for operators to refund, credit or dismiss.
CREATE TABLE pairing_failures (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    payment_session_id  UUID NOT NULL REFERENCES payment_sessions (id),
    pairing_request_id  UUID REFERENCES pairing_requests (id),
    customer_id         UUID NOT NULL REFERENCES customers (id),
    targeted_mitra_id   UUID REFERENCES mitras (id),
    cause_tag           TEXT NOT NULL CHECK (cause_tag IN (
        'no_mitra_available', 'all_mitras_rejected', 'targeted_mitra_offline',
        'targeted_mitra_rejected', 'targeted_mitra_timeout', 'payment_session_expired',
        'customer_cancelled')),
    amount              BIGINT NOT NULL CHECK (amount >= 0),
    operator_action     TEXT CHECK (operator_action IN ('refunded', 'credited', 'no_action')),
    actioned_by         UUID REFERENCES cc_users (id),
    actioned_at         TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pairing_failures_action_is_attributed CHECK (
        (operator_action IS NULL AND actioned_by IS NULL AND actioned_at IS NULL)
        OR (operator_action IS NOT NULL AND actioned_by IS NOT NULL AND actioned_at IS NOT NULL))
);
CREATE INDEX pairing_failures_created_idx ON pairing_failures (created_at DESC);
CREATE INDEX pairing_failures_cause_idx ON pairing_failures (cause_tag, created_at DESC);
CREATE INDEX pairing_failures_unactioned_idx ON pairing_failures (created_at DESC) WHERE operator_action IS NULL;
CREATE INDEX pairing_failures_payment_idx ON pairing_failures (payment_session_id);
