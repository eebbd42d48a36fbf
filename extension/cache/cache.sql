
-- ---------------------------------------------------------------------------
-- Result cache: rules, invalidation trigger, statistics, control
-- ---------------------------------------------------------------------------

-- The rules.  A table, so that rules survive restarts and pg_dump.  tables
-- lists every table the rule put the invalidation trigger on; columns, for
-- a query rule, which columns of each it reads ({"relid": [attnums]}, null
-- for the whole row), so that the trigger can ignore UPDATEs of the others;
-- keys, which integer columns it restricts each to one value of (WHERE
-- game_id = 7), so that a write invalidates only the results of the keys
-- its rows had (the key trigger, perfopt_cache_keys).
CREATE TABLE perfopt.cache_rule_defs (
    kind     text NOT NULL CHECK (kind IN ('query', 'table')),
    queryid  bigint,
    query    text,
    relid    oid,
    ttl      interval,
    tables   oid[] NOT NULL,
    created  timestamptz NOT NULL DEFAULT now(),
    columns  jsonb,
    keys     jsonb,
    CHECK ((kind = 'query') = (queryid IS NOT NULL)),
    CHECK ((kind = 'table') = (relid IS NOT NULL))
);
CREATE UNIQUE INDEX cache_rule_defs_query ON perfopt.cache_rule_defs (queryid) WHERE kind = 'query';
CREATE UNIQUE INDEX cache_rule_defs_table ON perfopt.cache_rule_defs (relid) WHERE kind = 'table';
SELECT pg_catalog.pg_extension_config_dump('perfopt.cache_rule_defs', '');

-- perfopt's own reads of its rules, from the functions below and the event
-- trigger (cache_children.sql): the rows whose tables include one of tbls
-- (every row for NULL), each with its address (id) for changing it, and
-- whether this transaction can (current: false for a row another
-- transaction changed after this one's snapshot).  They run in the user's
-- transaction, so they are read as cache_rule_catalog.c says, without the
-- predicate locks a SELECT of the table would take under SERIALIZABLE (and
-- the serialization failures those would cause).
CREATE FUNCTION perfopt._cache_rule_rows(tbls oid[],
    OUT id tid, OUT current boolean, OUT kind text, OUT queryid bigint, OUT query text, OUT relid oid,
    OUT tables oid[], OUT columns jsonb, OUT keys jsonb)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'perfopt_cache_rule_rows'
LANGUAGE C VOLATILE;

-- Delete the rules matching kind and queryid, relid or query text; their
-- tables, NULL when none matched.  Found by _cache_rule_rows and deleted by
-- address: a row another transaction changed meanwhile is found again once
-- that one ends (READ COMMITTED), or is a serialization failure (a
-- transaction snapshot cannot change it).  Only cache_query(), cache_table()
-- and the uncache functions change a rule this way: a rule changed by two
-- transactions at once fails one of them under REPEATABLE READ or
-- SERIALIZABLE, as any row would.
CREATE FUNCTION perfopt._cache_rule_remove(k text, qid bigint, rel oid, qtext text)
RETURNS oid[]
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    removed oid[];
    got oid[];
BEGIN
    LOOP
        SELECT d.id, d.current INTO r FROM perfopt._cache_rule_rows(NULL) d
         WHERE d.kind = k AND (d.queryid = qid OR d.relid = rel OR d.query = qtext)
         LIMIT 1;
        EXIT WHEN NOT FOUND;
        IF r.current THEN
            DELETE FROM perfopt.cache_rule_defs d WHERE d.ctid = r.id RETURNING d.tables INTO got;
        END IF;
        IF r.current AND FOUND THEN
            removed := coalesce(removed, '{}') || got;
        ELSIF current_setting('transaction_isolation') <> 'read committed' THEN
            -- what PostgreSQL answers a write of a row changed meanwhile
            RAISE EXCEPTION 'could not serialize access due to concurrent update'
                USING ERRCODE = 'serialization_failure',
                      DETAIL = 'The cache rule was changed by a concurrent transaction.',
                      HINT = 'The transaction might succeed if retried.';
        END IF;
    END LOOP;
    RETURN removed;
END $$;

CREATE FUNCTION perfopt._cache_invalidate() RETURNS trigger
AS 'MODULE_PATHNAME', 'perfopt_cache_invalidate'
LANGUAGE C;

CREATE FUNCTION perfopt._cache_note_keys() RETURNS trigger
AS 'MODULE_PATHNAME', 'perfopt_cache_note_keys'
LANGUAGE C;

-- Backends reload their copy of the rules when this table's generation moves.
CREATE TRIGGER perfopt_cache_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON perfopt.cache_rule_defs
    FOR EACH STATEMENT EXECUTE FUNCTION perfopt._cache_invalidate();
ALTER TABLE perfopt.cache_rule_defs ENABLE ALWAYS TRIGGER perfopt_cache_invalidate;

CREATE FUNCTION perfopt._cache_analyze(query text, has_ttl boolean,
    OUT queryid bigint, OUT tables oid[], OUT columns jsonb, OUT keys jsonb)
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

-- A table that is not partitioned, not a partition, and has no parent or
-- child: where a write's statement and row triggers fire on the table itself.
CREATE FUNCTION perfopt._cache_plain_table(tbl oid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                    WHERE c.oid = tbl AND c.relkind = 'r' AND NOT c.relispartition)
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                        WHERE i.inhrelid = tbl OR i.inhparent = tbl)
$$;

-- The columns of tbl (numbers, each once) that the query rules reading it
-- list in their columns or keys (field), those that still exist.
CREATE FUNCTION perfopt._cache_rule_attnums(tbl oid, field text) RETURNS SETOF int2
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT a.attnum
      FROM perfopt._cache_rule_rows(ARRAY[tbl]) r,
           LATERAL (SELECT CASE field WHEN 'keys' THEN r.keys ELSE r.columns END -> tbl::text) AS l(list),
           LATERAL jsonb_array_elements_text(CASE WHEN jsonb_typeof(l.list) = 'array'
                                                  THEN l.list ELSE '[]' END) AS e(attnum)
      JOIN pg_catalog.pg_attribute a
        ON a.attrelid = tbl AND a.attnum = e.attnum::int2 AND NOT a.attisdropped
     WHERE r.kind = 'query'
$$;

-- The columns whose UPDATEs the trigger on tbl must watch, or NULL for
-- every column.  A column list is exact only where UPDATE OF fires whenever
-- a value changes: on a plain table with no BEFORE UPDATE row trigger (which
-- may change columns the UPDATE did not name; counted even when disabled,
-- since enabling one is not noticed), without partitions or inheritance (a
-- row moving between partitions fires only the parent's statement trigger,
-- which watches the parent's columns).  Table rules read whole rows.
CREATE FUNCTION perfopt._cache_watched_columns(tbl oid) RETURNS int2[]
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN NOT perfopt._cache_plain_table(tbl)
          OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                      WHERE t.tgrelid = tbl AND (t.tgtype & 83) = 19  -- ROW, BEFORE, UPDATE
                        AND t.tgname <> 'perfopt_cache_keys')
          OR EXISTS (SELECT 1 FROM perfopt._cache_rule_rows(ARRAY[tbl]) r
                      WHERE (r.kind <> 'query'
                             OR coalesce(jsonb_typeof(r.columns -> tbl::text), 'null') <> 'array'))
        THEN NULL
        ELSE (SELECT array_agg(n ORDER BY n) FROM perfopt._cache_rule_attnums(tbl, 'columns') AS n)
    END
$$;

-- The integer columns whose values the key trigger on tbl must note, or
-- NULL for no key trigger: the key columns of the query rules reading tbl,
-- where a row's values are the ones written (a plain table whose only
-- BEFORE INSERT or UPDATE row trigger is perfopt's, columns not generated).
CREATE FUNCTION perfopt._cache_key_columns(tbl oid) RETURNS int2[]
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN NOT perfopt._cache_plain_table(tbl)
          OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                      WHERE t.tgrelid = tbl AND (t.tgtype & 67) = 3  -- ROW, BEFORE
                        AND (t.tgtype & 20) <> 0                     -- INSERT or UPDATE
                        AND t.tgname <> 'perfopt_cache_keys')
        THEN NULL
        ELSE (SELECT array_agg(n ORDER BY n)
                FROM perfopt._cache_rule_attnums(tbl, 'keys') AS n
                JOIN pg_catalog.pg_attribute a ON a.attrelid = tbl AND a.attnum = n
               WHERE a.attgenerated = '' AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype))
    END
$$;

-- Make the key trigger on tbl what the rules need (see _cache_key_columns):
-- BEFORE INSERT OR UPDATE OR DELETE FOR EACH ROW, its arguments the key
-- columns' numbers (which survive a RENAME COLUMN), or none.
CREATE FUNCTION perfopt._cache_sync_key_trigger(tbl oid, enable boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cols int2[] := perfopt._cache_key_columns(tbl);
    cur record;
BEGIN
    SELECT ARRAY(SELECT x::int2 FROM unnest(string_to_array(encode(g.tgargs, 'escape'), '\000')) AS x
                  WHERE x <> '' ORDER BY 1) AS attrs, g.tgenabled
      INTO cur
      FROM pg_catalog.pg_trigger g
     WHERE g.tgrelid = tbl AND g.tgname = 'perfopt_cache_keys';
    IF cur.attrs IS NOT NULL AND cols IS NOT NULL AND cur.attrs = cols THEN
        IF enable AND cur.tgenabled <> 'A' THEN
            EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER perfopt_cache_keys', tbl::regclass);
        END IF;
        RETURN;
    END IF;
    IF cur.attrs IS NOT NULL THEN
        EXECUTE format('DROP TRIGGER perfopt_cache_keys ON %s', tbl::regclass);
    END IF;
    IF cols IS NOT NULL THEN
        EXECUTE format('CREATE TRIGGER perfopt_cache_keys BEFORE INSERT OR UPDATE OR DELETE ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION perfopt._cache_note_keys(%s)',
                       tbl::regclass, (SELECT string_agg(quote_literal(c::text), ', ') FROM unnest(cols) AS c));
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER perfopt_cache_keys', tbl::regclass);
    END IF;
END $$;

-- Make the invalidation trigger on each listed table what the rules need:
-- none when no rule reads the table, else AFTER INSERT OR UPDATE [OF the
-- watched columns] OR DELETE OR TRUNCATE.  A trigger whose column list
-- changes is dropped and created again in this transaction, so no other
-- transaction sees the table without one.  enable: the rule functions enable
-- every trigger ALWAYS; the event trigger (cache_children.sql) keeps an
-- existing trigger's state, so that a DISABLE TRIGGER by the DBA holds.
CREATE FUNCTION perfopt._cache_sync_triggers(tables oid[], enable boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t oid;
    cols int2[];
    cur record;
    state text;
BEGIN
    FOR t IN SELECT DISTINCT u FROM unnest(tables) AS u
              WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = u) LOOP
        -- the key trigger first: it decides whether UPDATE OF can be exact
        -- (and changing it is DDL that may bring the event trigger here)
        PERFORM perfopt._cache_sync_key_trigger(t, enable);
        SELECT ARRAY(SELECT unnest(g.tgattr::int2[]) ORDER BY 1) AS attrs, g.tgenabled
          INTO cur
          FROM pg_catalog.pg_trigger g
         WHERE g.tgrelid = t AND g.tgname = 'perfopt_cache_invalidate';
        IF NOT EXISTS (SELECT 1 FROM perfopt._cache_rule_rows(ARRAY[t])) THEN
            IF cur IS NOT NULL THEN
                EXECUTE format('DROP TRIGGER perfopt_cache_invalidate ON %s', t::regclass);
            END IF;
            CONTINUE;
        END IF;
        cols := perfopt._cache_watched_columns(t);
        IF cur.attrs IS NULL OR cur.attrs <> coalesce(cols, '{}') THEN
            IF cur.attrs IS NOT NULL THEN
                EXECUTE format('DROP TRIGGER perfopt_cache_invalidate ON %s', t::regclass);
            END IF;
            EXECUTE format('CREATE TRIGGER perfopt_cache_invalidate'
                           ' AFTER INSERT OR UPDATE%s OR DELETE OR TRUNCATE ON %s'
                           ' FOR EACH STATEMENT EXECUTE FUNCTION perfopt._cache_invalidate()',
                           CASE WHEN cols IS NULL THEN ''
                                ELSE ' OF ' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                                                  FROM pg_catalog.pg_attribute a
                                                 WHERE a.attrelid = t AND a.attnum = ANY (cols)) END,
                           t::regclass);
            state := CASE WHEN enable OR cur.tgenabled IS NULL THEN 'A' ELSE cur.tgenabled END;
            cur.tgenabled := 'O';
        ELSE
            state := CASE WHEN enable THEN 'A' ELSE cur.tgenabled END;
        END IF;
        IF cur.tgenabled <> state THEN
            EXECUTE format('ALTER TABLE %s %s TRIGGER perfopt_cache_invalidate', t::regclass,
                           CASE state WHEN 'A' THEN 'ENABLE ALWAYS' WHEN 'R' THEN 'ENABLE REPLICA'
                                      WHEN 'D' THEN 'DISABLE' ELSE 'ENABLE' END);
        END IF;
    END LOOP;
END $$;

CREATE FUNCTION perfopt.cache_query(query text, ttl interval DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    a record;
    old_tables oid[];
BEGIN
    IF query IS NULL THEN
        RAISE EXCEPTION 'query must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the SELECT statement to cache, e.g. perfopt.cache_query(''SELECT ... WHERE id = $1'').';
    END IF;
    PERFORM perfopt._cache_check_ttl(ttl);
    a := perfopt._cache_analyze(query, ttl IS NOT NULL);
    old_tables := perfopt._cache_rule_remove('query', a.queryid, NULL, NULL);
    INSERT INTO perfopt.cache_rule_defs (kind, queryid, query, ttl, tables, columns, keys)
    VALUES ('query', a.queryid, query, ttl, a.tables, a.columns, a.keys);
    PERFORM perfopt._cache_sync_triggers(a.tables || coalesce(old_tables, '{}'));
    RETURN a.queryid;
END $$;

CREATE FUNCTION perfopt.cache_table(tbl regclass, ttl interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    tabs oid[];
    old_tables oid[];
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'tbl must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass the table whose readers to cache, e.g. perfopt.cache_table(''scores'').';
    END IF;
    PERFORM perfopt._cache_check_ttl(ttl);
    tabs := perfopt._cache_table_check(tbl);
    old_tables := perfopt._cache_rule_remove('table', NULL, tbl, NULL);
    INSERT INTO perfopt.cache_rule_defs (kind, relid, ttl, tables)
    VALUES ('table', tbl, ttl, tabs);
    PERFORM perfopt._cache_sync_triggers(tabs || coalesce(old_tables, '{}'));
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
    tabs := perfopt._cache_rule_remove('query', qid, NULL, uncache_query.query);
    IF tabs IS NULL THEN
        RAISE EXCEPTION 'no cache rule for this statement'
            USING ERRCODE = 'undefined_object',
                  HINT = 'perfopt.cache_rules lists the rules; the statement must have the same shape as the one given to perfopt.cache_query().';
    END IF;
    PERFORM perfopt._cache_sync_triggers(tabs, false);
END $$;

CREATE FUNCTION perfopt.uncache_table(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    tabs oid[];
BEGIN
    tabs := perfopt._cache_rule_remove('table', NULL, tbl, NULL);
    IF tabs IS NULL THEN
        RAISE EXCEPTION 'no cache rule for table %', tbl
            USING ERRCODE = 'undefined_object',
                  HINT = 'perfopt.cache_rules lists the rules.';
    END IF;
    PERFORM perfopt._cache_sync_triggers(tabs, false);
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
    perfopt._cache_sync_triggers(oid[], boolean), perfopt._cache_sync_key_trigger(oid, boolean),
    perfopt._cache_rule_rows(oid[]), perfopt._cache_rule_remove(text, bigint, oid, text)
    FROM PUBLIC;
-- The functions behind the cache's views are restricted as the views are,
-- and rule texts (with their constants) are for those who manage rules.
REVOKE ALL ON FUNCTION perfopt._cache_stats(), perfopt.cache_totals() FROM PUBLIC;
REVOKE ALL ON perfopt.cache_rule_defs, perfopt.cache_rules FROM PUBLIC;
