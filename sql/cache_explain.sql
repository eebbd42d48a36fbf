-- Result cache under EXPLAIN: EXPLAIN ANALYZE of a statement uses the key
-- the statement itself uses (so it reports the hit or miss the statement
-- would get, and a result it stores serves the statement), EXPLAIN ANALYZE
-- EXECUTE says so too, and EXPLAIN's output is PostgreSQL's own where no
-- rule could select the statement or without ANALYZE.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET perfopt.cache_mode = rules;

CREATE TABLE ce_items (id int PRIMARY KEY, grp int NOT NULL, price int NOT NULL);
INSERT INTO ce_items SELECT g, g % 4, g * 10 FROM generate_series(1, 40) g;
CREATE TABLE ce_plain (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO ce_plain SELECT g, g FROM generate_series(1, 10) g;
SELECT perfopt.cache_table('ce_items');

-- no rule selects it: no line, under ANALYZE or not
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM ce_plain;

-- the statement stores, EXPLAIN ANALYZE of it is a hit (any spelling of
-- EXPLAIN's options), and the statement still hits afterwards
SELECT grp, sum(price) FROM ce_items WHERE price > 100 GROUP BY grp ORDER BY grp;
SELECT perfopt.cache_last_outcome();
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT grp, sum(price) FROM ce_items WHERE price > 100 GROUP BY grp ORDER BY grp;
EXPLAIN /* options */ ( ANALYZE true,COSTS false, TIMING off, SUMMARY off )
SELECT grp, sum(price) FROM ce_items WHERE price > 100 GROUP BY grp ORDER BY grp;
SELECT grp, sum(price) FROM ce_items WHERE price > 100 GROUP BY grp ORDER BY grp;
SELECT perfopt.cache_last_outcome();

-- EXPLAIN ANALYZE of a statement never run: a miss that stores, and the
-- statement is then a hit with the same rows
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT grp, sum(price) FROM ce_items WHERE price > 200 GROUP BY grp ORDER BY grp;
SELECT grp, sum(price) FROM ce_items WHERE price > 200 GROUP BY grp ORDER BY grp;
SELECT perfopt.cache_last_outcome();

-- after other statements in the same query string, the span is the same
SELECT 1 AS one \; EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT grp, sum(price) FROM ce_items WHERE price > 200 GROUP BY grp ORDER BY grp;

-- other constants are another key, under EXPLAIN as anywhere
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT grp, sum(price) FROM ce_items WHERE price > 300 GROUP BY grp ORDER BY grp;

-- the settings are the statement's: another value of a keyed setting misses
SET extra_float_digits = 1;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT grp, sum(price) FROM ce_items WHERE price > 100 GROUP BY grp ORDER BY grp;
RESET extra_float_digits;

-- a write invalidates: EXPLAIN ANALYZE says miss and stores again
UPDATE ce_items SET price = price + 1 WHERE id = 40;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT grp, sum(price) FROM ce_items WHERE price > 100 GROUP BY grp ORDER BY grp;
SELECT grp, sum(price) FROM ce_items WHERE price > 100 GROUP BY grp ORDER BY grp;
SELECT perfopt.cache_last_outcome();

-- without ANALYZE: the real plan, no line
EXPLAIN (COSTS OFF) SELECT grp, sum(price) FROM ce_items WHERE price > 100 GROUP BY grp ORDER BY grp;

-- EXPLAIN ANALYZE EXECUTE: the line too, on the prepared statement's key
SET plan_cache_mode = force_custom_plan;
PREPARE ce_q(int) AS SELECT grp, sum(price) FROM ce_items WHERE price > $1 GROUP BY grp ORDER BY grp;
EXECUTE ce_q(500);
SELECT perfopt.cache_last_outcome();
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE ce_q(500);
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE ce_q(600);
EXECUTE ce_q(600);
SELECT perfopt.cache_last_outcome();
-- without ANALYZE, or in another format: PostgreSQL's own output
EXPLAIN (COSTS OFF) EXECUTE ce_q(500);
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, FORMAT YAML) EXECUTE ce_q(500);
-- a prepared statement no rule selects: no line
PREPARE ce_p AS SELECT count(*) FROM ce_plain;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE ce_p;
DEALLOCATE ce_q;
DEALLOCATE ce_p;
RESET plan_cache_mode;

SELECT perfopt.uncache_table('ce_items');
DROP TABLE ce_items, ce_plain;
