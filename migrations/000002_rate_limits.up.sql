-- Fixed-window counters for rate limits, shared by every instance.
-- key is a hash (never an email or address in the clear).
CREATE TABLE rate_limits (
    key          text        PRIMARY KEY,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    count        integer     NOT NULL
);
CREATE INDEX rate_limits_window_end_idx ON rate_limits (window_end);
