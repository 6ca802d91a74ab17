-- Demo enterprise systems. Times are stored as offsets from the request's
-- reference time (see demo/seed.toml) and materialised at query time.

CREATE TABLE seed_info (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);

CREATE TABLE customers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    phone TEXT NOT NULL,
    since_days_ago INTEGER NOT NULL
);

CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    product TEXT NOT NULL,
    product_name TEXT NOT NULL,
    status TEXT NOT NULL,
    placed_days_ago INTEGER NOT NULL,
    amount_cny REAL NOT NULL,
    address TEXT NOT NULL,
    carrier TEXT,
    tracking_no TEXT,
    eta_in_days INTEGER
);
CREATE INDEX orders_by_customer ON orders (customer_id);

CREATE TABLE logistics_events (
    order_id TEXT NOT NULL REFERENCES orders (id),
    hours_ago INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX logistics_by_order ON logistics_events (order_id);

CREATE TABLE stock (
    product TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    PRIMARY KEY (product, warehouse)
);

CREATE TABLE refunds (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (id),
    amount_cny REAL NOT NULL,
    status TEXT NOT NULL,
    card_tail TEXT NOT NULL,
    arrived_days_ago INTEGER
);

CREATE TABLE repairs (
    id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    product TEXT NOT NULL,
    product_name TEXT NOT NULL,
    order_id TEXT REFERENCES orders (id),
    reported_days_ago INTEGER NOT NULL,
    status TEXT NOT NULL,
    visit_days_ago INTEGER,
    note TEXT NOT NULL
);
CREATE INDEX repairs_by_customer ON repairs (customer_id);
