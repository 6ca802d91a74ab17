-- Security: who may call (API keys, agent accounts and their sessions), what
-- they did (audit, ticket event actors), and blind keys that group sealed texts.
-- Free texts of customers and agents are now sealed (AES-256-GCM) by the
-- application; text_key and answer_key are keyed hashes of the (masked) text
-- and answer, so equal questions still group without storing them in clear.
ALTER TABLE turns ADD COLUMN text_key TEXT;
ALTER TABLE turns ADD COLUMN answer_key TEXT;
CREATE INDEX turns_by_text_key ON turns (text_key);

-- Keyed hash of the customer's phone (from the ticket's sealed context), so
-- an agent can find a caller's tickets by phone without it stored in clear.
ALTER TABLE tickets ADD COLUMN phone_key TEXT;
CREATE INDEX tickets_by_phone_key ON tickets (phone_key);

-- Who made a ticket event: "agent:<name>", "key:<id>", "local" or "bot".
ALTER TABLE ticket_events ADD COLUMN actor TEXT;

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,  -- SHA-256 of the secret; the secret is shown once
    label        TEXT,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);

CREATE TABLE agents (
    name           TEXT PRIMARY KEY,
    role           TEXT NOT NULL,       -- agent or admin
    password_hash  TEXT NOT NULL,       -- argon2id, PHC string
    created_at     TEXT NOT NULL,
    disabled_at    TEXT
);

CREATE TABLE agent_sessions (
    token_hash   TEXT PRIMARY KEY,      -- SHA-256 of the session token
    agent        TEXT NOT NULL REFERENCES agents (name),
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    ended_at     TEXT
);

CREATE TABLE audit (
    id           TEXT PRIMARY KEY,
    at           TEXT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    ticket_id    TEXT,
    customer_id  TEXT,
    detail       TEXT
);
CREATE INDEX audit_by_at ON audit (at);
