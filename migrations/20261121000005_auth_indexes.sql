-- The per-address one-time-code throttle counts recent codes by client address.
CREATE INDEX otp_codes_client_addr_idx ON otp_codes (client_addr, created_at DESC);
