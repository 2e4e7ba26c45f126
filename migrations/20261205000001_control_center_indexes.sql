-- The payments ledger of the control center pages payments newest first and picks each
-- one's charge (the successful one, else the latest attempt).
CREATE INDEX charges_payment_idx ON charges (payment_session_id, created_at DESC);
CREATE INDEX payment_sessions_created_idx ON payment_sessions (created_at DESC, id DESC);
