-- A charge is claimed (pending) under its idempotency key before the provider is called,
-- then completed. A retry of a pending charge calls the provider again with the same key
-- (providers deduplicate by it) and completes the same row.
ALTER TABLE charges DROP CONSTRAINT charges_status_check;
ALTER TABLE charges ADD CONSTRAINT charges_status_check CHECK (status IN ('pending', 'succeeded', 'failed'));
ALTER TABLE charges ADD COLUMN completed_at TIMESTAMPTZ;
ALTER TABLE charges ADD CONSTRAINT charges_completed_at_matches_status
    CHECK ((completed_at IS NULL) = (status = 'pending'));
