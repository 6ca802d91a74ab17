-- Messaging platforms (WeChat, WeCom, ...): who a customer is on each, the
-- messages received from them (the dedupe key of platform retries, and work a
-- crash must not lose), the outbox of replies on their way to them, and where
-- a pulled message stream was read up to.

-- One customer per platform identity; several identities may share a customer.
CREATE TABLE channel_identities (
    channel      TEXT NOT NULL,
    account      TEXT NOT NULL,
    external_id  TEXT NOT NULL,          -- openid, external_userid, open_id
    customer_id  TEXT NOT NULL,
    linked_at    TEXT NOT NULL,
    PRIMARY KEY (channel, account, external_id)
);
CREATE INDEX channel_identities_by_customer ON channel_identities (customer_id);

-- A received message until its turn is stored; the unique key makes a
-- platform's retry of it a no-op on every replica.
CREATE TABLE channel_inbound (
    id            TEXT PRIMARY KEY,      -- also the trace id of its turn
    channel       TEXT NOT NULL,
    account       TEXT NOT NULL,
    message_key   TEXT NOT NULL,         -- the platform's message id
    external_id   TEXT NOT NULL,
    thread        TEXT,                  -- where on the platform (a Douyin chat or comment)
    customer_id   TEXT NOT NULL,
    text          TEXT NOT NULL,         -- sealed; emptied once answered
    state         TEXT NOT NULL,         -- received or done
    claimed_until TEXT,
    received_at   TEXT NOT NULL,
    UNIQUE (channel, account, message_key)
);
CREATE INDEX channel_inbound_pending ON channel_inbound (state, received_at);

-- Replies to platforms, written before they are sent.
CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    channel       TEXT NOT NULL,
    account       TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    thread        TEXT,
    kind          TEXT NOT NULL,         -- text, or transfer (hand the customer to the platform's own agents)
    text          TEXT NOT NULL,         -- sealed; emptied once sent
    options       TEXT,                  -- JSON [{id, title}]: a clarifying question's choices, for platforms with menus
    message_id    TEXT,                  -- messages.id of an agent's reply
    state         TEXT NOT NULL,         -- pending, passive (answered in the callback), sent or failed
    attempts      INTEGER NOT NULL DEFAULT 0,
    not_before    TEXT NOT NULL,
    claimed_until TEXT,
    error         TEXT,
    created_at    TEXT NOT NULL,
    sent_at       TEXT
);
CREATE INDEX outbox_due ON outbox (state, not_before);
CREATE INDEX outbox_by_user ON outbox (channel, account, external_id, created_at);

-- Where a pull-based platform's message stream was read up to (WeCom's sync_msg cursor).
CREATE TABLE channel_cursors (
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    cursor      TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (channel, account)
);

-- Where a reply to the turn or message goes (JSON: channel, account, user).
ALTER TABLE turns ADD COLUMN route TEXT;
ALTER TABLE messages ADD COLUMN route TEXT;
