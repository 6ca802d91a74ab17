-- The agent workspace and the web chat: messages exchanged while a person
-- owns the conversation, notes the customer may see, and the feed of ticket
-- changes the workspace follows live (replayed from a cursor after a reconnect).

-- Notes the customer sees (ticket progress) versus agents' private notes.
ALTER TABLE ticket_events ADD COLUMN public BIGINT NOT NULL DEFAULT 1;

-- Customer messages the bot did not answer (a person owns the conversation)
-- and agents' replies. seq orders them and is the live streams' cursor.
CREATE TABLE messages (
    seq            BIGSERIAL PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    ticket_id      TEXT REFERENCES tickets (id),
    customer_id    TEXT,
    session_id     TEXT,
    channel        TEXT NOT NULL,
    role           TEXT NOT NULL,       -- customer or agent
    author         TEXT,                -- the agent's actor name
    text           TEXT NOT NULL,       -- masked and sealed
    delivery       TEXT NOT NULL,       -- received, sent, queued or failed
    delivery_error TEXT,
    created_at     TEXT NOT NULL
);
CREATE INDEX messages_by_customer ON messages (customer_id, seq);
CREATE INDEX messages_by_session ON messages (session_id, seq);
CREATE INDEX messages_by_ticket ON messages (ticket_id, seq);

-- What changed on which ticket, in order: the workspace's live feed.
CREATE TABLE ticket_feed (
    seq        BIGSERIAL PRIMARY KEY,
    ticket_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,           -- opened, changed, note, customer_message, agent_message
    at         TEXT NOT NULL
);
