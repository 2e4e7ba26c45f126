-- Timer probes: canary timers that record when they fired, to measure the timer service
-- (never early, how late, how many times). `bestie timers probe` schedules them.
CREATE TABLE timer_probes (
    id          UUID PRIMARY KEY,
    due_at      TIMESTAMPTZ NOT NULL,
    -- The first firing; later firings only count.
    fired_at    TIMESTAMPTZ,
    firings     INTEGER NOT NULL DEFAULT 0 CHECK (firings >= 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX timer_probes_created_idx ON timer_probes (created_at);

-- Every charge carries the idempotency key it was made with: a retried or duplicated charge
-- job finds the row instead of charging again.
ALTER TABLE charges ADD COLUMN idempotency_key TEXT NOT NULL;
ALTER TABLE charges ADD CONSTRAINT charges_idempotency_key_key UNIQUE (idempotency_key);
