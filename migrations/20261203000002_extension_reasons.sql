-- An extension's resolution_reason is one of the names the code knows
-- (domain::store::extensions::ExtensionReason), like every other state and cause.
ALTER TABLE extension_requests ADD CONSTRAINT extension_requests_reason_known CHECK (resolution_reason IN (
    'mitra_rejected', 'timeout', 'mitra_offline', 'payment_unavailable', 'payment_declined',
    'session_ended_early'));
