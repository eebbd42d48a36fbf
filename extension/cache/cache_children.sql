
-- ---------------------------------------------------------------------------
-- Result cache: partitions and inheritance children that appear after a rule
-- ---------------------------------------------------------------------------

-- A rule puts the trigger on every table it reads, down to each partition
-- and inheritance child existing at the time.  A child created or attached
-- later joins the rules of its ancestors here, trigger included; until it
-- does, statements that read it are not cached (the executor finds a table
-- without the trigger), so this is about keeping the cache useful, never
-- about correctness.  The same goes for a trigger's column list (see
-- perfopt._cache_watched_columns): a table that becomes a parent or a child,
-- or gains a BEFORE UPDATE row trigger, gets a trigger that watches every
-- column; until then no result that reads the table is stored
-- (cache_trigger_coverage in cache_rules.c checks).  SECURITY DEFINER: whoever may create a partition may
-- extend the rules, which only the extension's owner can write.  The rules
-- are read with perfopt._cache_rule_rows, not a SELECT: this runs inside the
-- user's DDL, whose SERIALIZABLE transaction must not gain predicate locks
-- (nor fail to serialize) for it.
-- False when this database certainly has no rule: then DDL costs the event
-- trigger one call, and no read of perfopt.cache_rule_defs.
CREATE FUNCTION perfopt._cache_rules_may_exist() RETURNS boolean
AS 'MODULE_PATHNAME', 'perfopt_cache_rules_may_exist'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION perfopt._cache_adopt_children() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    changed oid;
    r record;
    grown oid[];
    resync oid[] := '{}';
    again boolean;
BEGIN
    IF NOT perfopt._cache_rules_may_exist() THEN
        RETURN;
    END IF;
    -- tables created or altered, and the tables of triggers created
    -- (other than perfopt's own, which sync itself creates)
    FOR changed IN
        SELECT DISTINCT CASE WHEN c.classid = 'pg_trigger'::regclass
                             THEN (SELECT g.tgrelid FROM pg_catalog.pg_trigger g
                                    WHERE g.oid = c.objid
                                      AND g.tgname NOT IN ('perfopt_cache_invalidate', 'perfopt_cache_keys'))
                             ELSE c.objid END
          FROM pg_event_trigger_ddl_commands() c
         WHERE (c.classid = 'pg_class'::regclass AND c.object_type = 'table')
            OR c.classid = 'pg_trigger'::regclass
    LOOP
        CONTINUE WHEN changed IS NULL;
        LOOP
            again := false;
            FOR r IN
                SELECT d.id, d.current, d.tables
                  FROM perfopt._cache_rule_rows(perfopt._cache_lineage(changed)) d
            LOOP
                grown := ARRAY(SELECT DISTINCT k
                                 FROM unnest(r.tables) AS t,
                                      LATERAL unnest(perfopt._cache_descendants(t)) AS k
                                WHERE perfopt._cache_child_cacheable(k)
                                ORDER BY k);
                grown := r.tables || ARRAY(SELECT g FROM unnest(grown) AS g
                                            WHERE g <> ALL (r.tables));
                -- A rule another transaction changed after this one's
                -- snapshot cannot grow here; the user's DDL must not fail
                -- for it: its new tables stay out (and without the trigger,
                -- so uncached) until DDL on them or cache_table() runs again;
                -- its tables' triggers are brought up to date all the same.
                IF grown <> r.tables AND NOT r.current THEN
                    RAISE LOG 'perfopt: cache rule on % not extended to %: changed by a concurrent transaction',
                        r.tables::regclass[], ARRAY(SELECT g FROM unnest(grown) AS g
                                                     WHERE g <> ALL (r.tables))::regclass[];
                    resync := resync || r.tables;
                    CONTINUE;
                END IF;
                IF grown <> r.tables THEN
                    -- the rule first: adding a trigger is DDL that brings us back here
                    UPDATE perfopt.cache_rule_defs SET tables = grown WHERE ctid = r.id;
                    -- READ COMMITTED: changed by a transaction that ended
                    -- meanwhile; read it again
                    IF NOT FOUND THEN
                        again := true;
                        EXIT;
                    END IF;
                END IF;
                resync := resync || grown;
            END LOOP;
            EXIT WHEN NOT again;
        END LOOP;
    END LOOP;
    -- new children get the trigger; a table that gained a BEFORE UPDATE row
    -- trigger, a parent or a child gets one that watches every column
    IF resync <> '{}' THEN
        PERFORM perfopt._cache_sync_triggers(resync, false);
    END IF;
END $$;

-- The table, its partitions or children, recursively.
CREATE FUNCTION perfopt._cache_descendants(tbl oid) RETURNS oid[]
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE d(relid) AS (
        SELECT tbl
        UNION
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN d ON i.inhparent = d.relid)
    SELECT array_agg(relid) FROM d
$$;

-- The table and every table it is a partition or child of, recursively.
CREATE FUNCTION perfopt._cache_lineage(tbl oid) RETURNS oid[]
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE a(relid) AS (
        SELECT tbl
        UNION
        SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN a ON i.inhrelid = a.relid)
    SELECT array_agg(relid) FROM a
$$;

-- What perfopt._cache_table_check() would refuse is left out: statements
-- reading it simply stay uncached.
CREATE FUNCTION perfopt._cache_child_cacheable(tbl oid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
           AND NOT c.relrowsecurity AND c.relnamespace <> 'pg_catalog'::regnamespace
      FROM pg_catalog.pg_class c WHERE c.oid = tbl
$$;

CREATE EVENT TRIGGER perfopt_cache_adopt_children ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE TRIGGER')
    EXECUTE FUNCTION perfopt._cache_adopt_children();
-- also for DDL run with session_replication_role = replica (pg_restore)
ALTER EVENT TRIGGER perfopt_cache_adopt_children ENABLE ALWAYS;
