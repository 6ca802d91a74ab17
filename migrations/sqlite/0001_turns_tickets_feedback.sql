-- Conversation turns, hand-off tickets and their history, customer feedback
-- and agent corrections. Portable SQL: TEXT ids and RFC 3339 timestamps, so
-- the same statements run on SQLite and PostgreSQL.

CREATE TABLE turns (
    trace_id     TEXT PRIMARY KEY,
    session_id   TEXT,
    customer_id  TEXT,
    channel      TEXT NOT NULL,
    text         TEXT NOT NULL,     -- masked
    intent       TEXT NOT NULL,
    confidence   REAL NOT NULL,
    decision     TEXT NOT NULL,
    answer       TEXT,              -- masked
    slots        TEXT NOT NULL,     -- JSON, masked
    lead         INTEGER NOT NULL,
    latency_ms   REAL NOT NULL,
    ticket_id    TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX turns_by_session ON turns (session_id, created_at);
CREATE INDEX turns_by_customer ON turns (customer_id, created_at);

CREATE TABLE tickets (
    id           TEXT PRIMARY KEY,
    status       TEXT NOT NULL,
    priority     TEXT NOT NULL,
    queue        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    customer_id  TEXT,
    session_id   TEXT,
    channel      TEXT NOT NULL,
    intent       TEXT NOT NULL,
    slots        TEXT NOT NULL,     -- JSON, masked
    due_at       TEXT NOT NULL,     -- pick-up deadline (SLA)
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX tickets_by_status ON tickets (status, queue, due_at);

CREATE TABLE ticket_events (
    id           TEXT PRIMARY KEY,
    ticket_id    TEXT NOT NULL REFERENCES tickets (id),
    status       TEXT NOT NULL,
    note         TEXT,
    at           TEXT NOT NULL
);
CREATE INDEX ticket_events_by_ticket ON ticket_events (ticket_id, at);

CREATE TABLE feedback (
    id           TEXT PRIMARY KEY,
    trace_id     TEXT NOT NULL REFERENCES turns (trace_id),
    useful       INTEGER NOT NULL,
    comment      TEXT,              -- masked
    created_at   TEXT NOT NULL
);

CREATE TABLE corrections (
    id           TEXT PRIMARY KEY,
    trace_id     TEXT REFERENCES turns (trace_id),
    text         TEXT NOT NULL,     -- masked
    intent       TEXT NOT NULL,
    answer       TEXT,
    note         TEXT,
    created_at   TEXT NOT NULL
);
