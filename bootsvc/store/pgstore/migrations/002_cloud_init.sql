-- Cloud-init data: one row per group or node, cloudinit.Data as YAML. The
-- secure parts (munge keys, certificates) have a table of their own, so
-- that grants and backups can treat them apart.
CREATE TABLE cloud_init (
    scope text NOT NULL CHECK (scope IN ('group', 'node')),
    name  text NOT NULL,
    doc   text NOT NULL,
    PRIMARY KEY (scope, name)
);
CREATE TABLE cloud_init_secure (
    scope text NOT NULL CHECK (scope IN ('group', 'node')),
    name  text NOT NULL,
    doc   text NOT NULL,
    PRIMARY KEY (scope, name)
);
-- Each node's instance-id and the image it was minted for.
CREATE TABLE cloud_init_instances (
    node  text PRIMARY KEY,
    image text NOT NULL,
    id    text NOT NULL
);
