-- The payment sweep was renamed the repair sweep (workers/src/repair.rs): its queued jobs now
-- carry the new type. Rows of the old type would never run again; the sweep of the next
-- period is queued under the new one. apalis creates its schema itself, after or before
-- ours, so the table may not exist yet on a new database.
DO $$
BEGIN
    IF to_regclass('apalis.jobs') IS NOT NULL THEN
        DELETE FROM apalis.jobs
        WHERE job_type = 'workers::sweep_payment_sessions::SweepPaymentSessions';
    END IF;
END
$$;
