
-- ---------------------------------------------------------------------------
-- Result cache (issue 3): rules, invalidation trigger, statistics, control
-- ---------------------------------------------------------------------------

-- The rules.  A table, so that rules survive restarts and pg_dump.  tables
-- lists every table the rule put the invalidation trigger on.
CREATE TABLE perfopt.cache_rule_defs (
    kind     text NOT NULL CHECK (kind IN ('query', 'table')),
    queryid  bigint,
    query    text,
    relid    oid,
    ttl      interval,
    tables   oid[] NOT NULL,
    created  timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'query') = (queryid IS NOT NULL)),
    CHECK ((kind = 'table') = (relid IS NOT NULL))
);
CREATE UNIQUE INDEX cache_rule_defs_query ON perfopt.cache_rule_defs (queryid) WHERE kind = 'query';
CREATE UNIQUE INDEX cache_rule_defs_table ON perfopt.cache_rule_defs (relid) WHERE kind = 'table';
SELECT pg_catalog.pg_extension_config_dump('perfopt.cache_rule_defs', '');

CREATE FUNCTION perfopt._cache_invalidate() RETURNS trigger
AS 'MODULE_PATHNAME', 'perfopt_cache_invalidate'
LANGUAGE C;

-- Backends reload their copy of the rules when this table's generation moves.
CREATE TRIGGER perfopt_cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON perfopt.cache_rule_defs
    FOR EACH STATEMENT EXECUTE FUNCTION perfopt._cache_invalidate();
ALTER TABLE perfopt.cache_rule_defs ENABLE ALWAYS TRIGGER perfopt_cache_invalidate;

CREATE FUNCTION perfopt._cache_analyze(query text, has_ttl boolean,
    OUT queryid bigint, OUT tables oid[])
AS 'MODULE_PATHNAME', 'perfopt_cache_analyze'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION perfopt._cache_table_check(tbl regclass) RETURNS oid[]
AS 'MODULE_PATHNAME', 'perfopt_cache_table_check'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION perfopt._cache_queryid(query text) RETURNS bigint
AS 'MODULE_PATHNAME', 'perfopt_cache_queryid'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION perfopt._cache_check_ttl(ttl interval) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF ttl IS NOT NULL AND ttl <= interval '0' THEN
        RAISE EXCEPTION 'ttl must be positive, got %', ttl
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass an interval such as interval ''30 seconds'', or NULL for entries that live until a write invalidates them.';
    END IF;
END $$;

-- Put the invalidation trigger on every listed table that lacks it.
CREATE FUNCTION perfopt._cache_add_triggers(tables oid[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t oid;
BEGIN
    FOREACH t IN ARRAY tables LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                        WHERE tgrelid = t AND tgname = 'perfopt_cache_invalidate') THEN
            EXECUTE format('CREATE TRIGGER perfopt_cache_invalidate'
                           ' AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s'
                           ' FOR EACH STATEMENT EXECUTE FUNCTION perfopt._cache_invalidate()',
                           t::regclass);
        END IF;
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER perfopt_cache_invalidate',
                       t::regclass);
    END LOOP;
END $$;

-- Remove the trigger from listed tables that no remaining rule needs.
CREATE FUNCTION perfopt._cache_drop_triggers(tables oid[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t oid;
BEGIN
    FOR t IN
        SELECT u FROM unnest(tables) AS u
         WHERE u NOT IN (SELECT unnest(r.tables) FROM perfopt.cache_rule_defs r)
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                        WHERE tgrelid = u AND tgname = 'perfopt_cache_invalidate')
    LOOP
        EXECUTE format('DROP TRIGGER perfopt_cache_invalidate ON %s', t::regclass);
    END LOOP;
END $$;

CREATE FUNCTION perfopt.cache_query(query text, ttl interval DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    a record;
BEGIN
    IF query IS NULL THEN
        RAISE EXCEPTION 'query must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the SELECT statement to cache, e.g. perfopt.cache_query(''SELECT ... WHERE id = $1'').';
    END IF;
    PERFORM perfopt._cache_check_ttl(ttl);
    a := perfopt._cache_analyze(query, ttl IS NOT NULL);
    PERFORM perfopt._cache_add_triggers(a.tables);
    DELETE FROM perfopt.cache_rule_defs d WHERE d.kind = 'query' AND d.queryid = a.queryid;
    INSERT INTO perfopt.cache_rule_defs (kind, queryid, query, ttl, tables)
    VALUES ('query', a.queryid, query, ttl, a.tables);
    RETURN a.queryid;
END $$;

CREATE FUNCTION perfopt.cache_table(tbl regclass, ttl interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    tabs oid[];
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'tbl must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the table whose readers to cache, e.g. perfopt.cache_table(''scores'').';
    END IF;
    PERFORM perfopt._cache_check_ttl(ttl);
    tabs := perfopt._cache_table_check(tbl);
    PERFORM perfopt._cache_add_triggers(tabs);
    DELETE FROM perfopt.cache_rule_defs d WHERE d.kind = 'table' AND d.relid = tbl;
    INSERT INTO perfopt.cache_rule_defs (kind, relid, ttl, tables)
    VALUES ('table', tbl, ttl, tabs);
END $$;

-- Matches the statement's shape, or the text the rule was created with (a
-- SELECT * changes shape when a column is added; a dropped table no longer
-- parses).
CREATE FUNCTION perfopt.uncache_query(query text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    qid bigint;
    tabs oid[];
BEGIN
    BEGIN
        qid := perfopt._cache_queryid(query);
    EXCEPTION WHEN OTHERS THEN
        qid := NULL;
    END;
    DELETE FROM perfopt.cache_rule_defs d
     WHERE d.kind = 'query' AND (d.queryid = qid OR d.query = uncache_query.query)
    RETURNING d.tables INTO tabs;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no cache rule for this statement'
            USING ERRCODE = 'undefined_object',
                  HINT = 'perfopt.cache_rules lists the rules; the statement must have the same shape as the one given to perfopt.cache_query().';
    END IF;
    PERFORM perfopt._cache_drop_triggers(tabs);
END $$;

CREATE FUNCTION perfopt.uncache_table(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    tabs oid[];
BEGIN
    DELETE FROM perfopt.cache_rule_defs d WHERE d.kind = 'table' AND d.relid = tbl
    RETURNING d.tables INTO tabs;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no cache rule for table %', tbl
            USING ERRCODE = 'undefined_object',
                  HINT = 'perfopt.cache_rules lists the rules.';
    END IF;
    PERFORM perfopt._cache_drop_triggers(tabs);
END $$;

CREATE VIEW perfopt.cache_rules AS
SELECT r.kind, r.queryid, r.query, r.relid::regclass AS tbl, r.ttl,
       r.tables::regclass[] AS triggered_tables, r.created
  FROM perfopt.cache_rule_defs r;

CREATE FUNCTION perfopt._cache_stats(
    OUT queryid bigint, OUT hits bigint, OUT misses bigint,
    OUT entries bigint, OUT bytes bigint, OUT invalidations bigint,
    OUT evictions bigint, OUT mean_hit_time double precision,
    OUT mean_miss_time double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_cache_stats'
LANGUAGE C STRICT VOLATILE;

-- One row per cached statement (and per query rule not yet executed).
CREATE VIEW perfopt.cache_stats AS
SELECT coalesce(s.queryid, r.queryid) AS queryid,
       coalesce(r.query,
                (SELECT q.query FROM perfopt.query_stats q
                  WHERE q.queryid = s.queryid AND q.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                  LIMIT 1)) AS query,
       coalesce(s.hits, 0) AS hits,
       coalesce(s.misses, 0) AS misses,
       CASE WHEN coalesce(s.hits, 0) + coalesce(s.misses, 0) > 0
            THEN s.hits::double precision / (s.hits + s.misses) END AS hit_ratio,
       coalesce(s.entries, 0) AS entries,
       coalesce(s.bytes, 0) AS bytes,
       coalesce(s.invalidations, 0) AS invalidations,
       coalesce(s.evictions, 0) AS evictions,
       s.mean_hit_time, s.mean_miss_time
  FROM perfopt._cache_stats() s
  FULL JOIN (SELECT * FROM perfopt.cache_rule_defs WHERE kind = 'query') r
    ON r.queryid = s.queryid;

CREATE FUNCTION perfopt.cache_totals(
    OUT entries bigint, OUT bytes bigint, OUT capacity bigint,
    OUT hits bigint, OUT misses bigint, OUT hit_ratio double precision,
    OUT stores bigint, OUT stores_refused bigint, OUT invalidations bigint,
    OUT expirations bigint, OUT evictions bigint, OUT too_large bigint,
    OUT max_entry_size bigint)
AS 'MODULE_PATHNAME', 'perfopt_cache_totals'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW perfopt.cache_totals AS SELECT * FROM perfopt.cache_totals();

CREATE FUNCTION perfopt.cache_clear() RETURNS integer
AS 'MODULE_PATHNAME', 'perfopt_cache_clear'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION perfopt.cache_clear(tbl regclass) RETURNS integer
AS 'MODULE_PATHNAME', 'perfopt_cache_clear_table'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION perfopt.cache_warm(query text) RETURNS boolean
AS 'MODULE_PATHNAME', 'perfopt_cache_warm'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION perfopt.cache_last_outcome() RETURNS text
AS 'MODULE_PATHNAME', 'perfopt_cache_last_outcome'
LANGUAGE C VOLATILE;

-- Rules put triggers on tables and their statistics show statement texts:
-- for administrators, like perfopt.reset_stats().
REVOKE ALL ON FUNCTION perfopt.cache_query(text, interval), perfopt.cache_table(regclass, interval),
    perfopt.uncache_query(text), perfopt.uncache_table(regclass),
    perfopt.cache_clear(), perfopt.cache_clear(regclass), perfopt.cache_warm(text),
    perfopt._cache_analyze(text, boolean), perfopt._cache_table_check(regclass),
    perfopt._cache_add_triggers(oid[]), perfopt._cache_drop_triggers(oid[])
    FROM PUBLIC;
GRANT SELECT ON perfopt.cache_rule_defs, perfopt.cache_rules TO PUBLIC;
