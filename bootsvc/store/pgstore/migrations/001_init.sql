-- The inventory: one row per group and node, the document in the inventory's
-- own YAML form so that every field (BMC passwords included) survives.
CREATE TABLE groups (
    name text PRIMARY KEY,
    doc  text NOT NULL
);
CREATE TABLE nodes (
    name text PRIMARY KEY,
    ip   text UNIQUE,          -- NULL: the node has no fixed address
    doc  text NOT NULL
);
-- Boot states: nodestate.Node as JSON.
CREATE TABLE node_states (
    name text PRIMARY KEY,
    doc  jsonb NOT NULL
);
-- Discovery leases, shared by every boot server on this database.
CREATE TABLE leases (
    mac     text PRIMARY KEY,
    ip      text NOT NULL UNIQUE,
    expires timestamptz NOT NULL
);
CREATE TABLE host_keys (
    node    text PRIMARY KEY,
    type    text NOT NULL,
    private text NOT NULL,
    public  text NOT NULL
);
-- Bumped by every inventory write, so that a server never replaces its
-- cache with an older reading.
CREATE TABLE inventory_version (v bigint NOT NULL);
INSERT INTO inventory_version (v) VALUES (0);
