-- Result cache: hits decided by the planner hook (statements without
-- parameters skip planning when a valid entry exists).  ExecutorStart
-- decides again; when the entry no longer answers the statement is planned
-- for real.  EXPLAIN shows real plans; privileges are checked on every hit,
-- including those of tables read by subqueries and through views.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
\set SHOW_CONTEXT never
SET perfopt.cache_mode = rules;

CREATE TABLE cp_scores (id int PRIMARY KEY, player int NOT NULL, points int NOT NULL);
INSERT INTO cp_scores SELECT g, g % 7, (g * 37) % 101 FROM generate_series(1, 200) g;
CREATE TABLE cp_players (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO cp_players SELECT g, 'p' || g FROM generate_series(0, 6) g;
ANALYZE cp_scores, cp_players;
SELECT perfopt.cache_table('cp_scores');
SELECT perfopt.cache_table('cp_players');
SELECT perfopt.reset_stats();

-- The leaderboard: stored, then answered without planning.  The planner
-- is not entered for a hit, so perfopt.query_stats counts one plan (the
-- miss) for three executions.
SELECT p.name, max(s.points) AS best FROM cp_scores s JOIN cp_players p ON p.id = s.player
 GROUP BY p.name ORDER BY best DESC, p.name LIMIT 3;
SELECT perfopt.cache_last_outcome();
SELECT p.name, max(s.points) AS best FROM cp_scores s JOIN cp_players p ON p.id = s.player
 GROUP BY p.name ORDER BY best DESC, p.name LIMIT 3;
SELECT perfopt.cache_last_outcome();
SELECT p.name, max(s.points) AS best FROM cp_scores s JOIN cp_players p ON p.id = s.player
 GROUP BY p.name ORDER BY best DESC, p.name LIMIT 3;
SELECT calls, plans, cache_hits, cache_misses FROM perfopt.query_stats
 WHERE query LIKE 'SELECT p.name, max(s.points)%';

-- A write invalidates: the next execution plans and runs for real.
INSERT INTO cp_scores VALUES (1000, 3, 500);
SELECT p.name, max(s.points) AS best FROM cp_scores s JOIN cp_players p ON p.id = s.player
 GROUP BY p.name ORDER BY best DESC, p.name LIMIT 3;
SELECT perfopt.cache_last_outcome();
SELECT p.name, max(s.points) AS best FROM cp_scores s JOIN cp_players p ON p.id = s.player
 GROUP BY p.name ORDER BY best DESC, p.name LIMIT 3;
SELECT perfopt.cache_last_outcome();

-- EXPLAIN shows the real plan, not the stand-in, for a cached statement;
-- EXPLAIN ANALYZE runs it (under the statement's own key: a hit here) and
-- says whether the rows came from the cache.
EXPLAIN (COSTS OFF) SELECT p.name, max(s.points) AS best FROM cp_scores s JOIN cp_players p ON p.id = s.player
 GROUP BY p.name ORDER BY best DESC, p.name LIMIT 3;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT p.name, max(s.points) AS best FROM cp_scores s JOIN cp_players p ON p.id = s.player
 GROUP BY p.name ORDER BY best DESC, p.name LIMIT 3;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT p.name, max(s.points) AS best FROM cp_scores s JOIN cp_players p ON p.id = s.player
 GROUP BY p.name ORDER BY best DESC, p.name LIMIT 3;

-- A prepared statement without parameters: its generic plan may be the
-- planner's stand-in, kept in the plan cache and executed later.  Each
-- execution decides again; after a write it is planned for real.
PREPARE top3 AS SELECT p.name, max(s.points) AS best FROM cp_scores s JOIN cp_players p ON p.id = s.player
 GROUP BY p.name ORDER BY best DESC, p.name LIMIT 3;
EXECUTE top3;
SELECT perfopt.cache_last_outcome();
EXECUTE top3;
SELECT perfopt.cache_last_outcome();
EXPLAIN (COSTS OFF) EXECUTE top3;
-- ANALYZE replans (relcache invalidation) without invalidating entries: the
-- new generic plan is the planner's stand-in (no plan is counted for it)
SELECT plans AS plans_before FROM perfopt.query_stats WHERE query LIKE 'SELECT p.name, max(s.points)%' \gset
ANALYZE cp_scores;
EXECUTE top3;
SELECT perfopt.cache_last_outcome();
EXECUTE top3;
SELECT perfopt.cache_last_outcome();
SELECT plans - :plans_before AS new_plans FROM perfopt.query_stats WHERE query LIKE 'SELECT p.name, max(s.points)%';
-- EXPLAIN of that stand-in generic plan shows the real plan
EXPLAIN (COSTS OFF) EXECUTE top3;
-- the stand-in, executed after a write, is planned for real (one plan)
UPDATE cp_scores SET points = 900 WHERE id = 1;
EXECUTE top3;
SELECT perfopt.cache_last_outcome();
SELECT plans - :plans_before AS new_plans FROM perfopt.query_stats WHERE query LIKE 'SELECT p.name, max(s.points)%';
EXECUTE top3;
SELECT perfopt.cache_last_outcome();
DELETE FROM cp_scores WHERE id = 1;
EXECUTE top3;
SELECT perfopt.cache_last_outcome();
-- with the cache switched off the kept stand-in is planned for real too
SET perfopt.cache_mode = off;
EXECUTE top3;
SELECT perfopt.cache_last_outcome();
RESET perfopt.cache_mode;
EXECUTE top3;
SELECT perfopt.cache_last_outcome();
DEALLOCATE top3;

-- Prepared statements with parameters are unaffected: custom plans, then
-- the generic plan, each answered at ExecutorStart.
PREPARE by_player(int) AS SELECT count(*), max(points) FROM cp_scores WHERE player = $1;
EXECUTE by_player(2);
EXECUTE by_player(2);
SELECT perfopt.cache_last_outcome();
SET plan_cache_mode = force_generic_plan;
EXECUTE by_player(2);
SELECT perfopt.cache_last_outcome();
EXECUTE by_player(4);
EXECUTE by_player(4);
SELECT perfopt.cache_last_outcome();
EXPLAIN (COSTS OFF) EXECUTE by_player(4);
RESET plan_cache_mode;
DEALLOCATE by_player;

-- Another ExecutorStart hook asking for instrumentation (auto_explain with
-- log_analyze, loaded after perfopt so its hook runs first): the
-- planner's stand-in is replaced by the real plan, answered in ExecutorRun.
SELECT p.name, max(s.points) AS best FROM cp_scores s JOIN cp_players p ON p.id = s.player
 GROUP BY p.name ORDER BY best DESC, p.name LIMIT 3;
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_level = debug5;
SELECT p.name, max(s.points) AS best FROM cp_scores s JOIN cp_players p ON p.id = s.player
 GROUP BY p.name ORDER BY best DESC, p.name LIMIT 3;
SELECT perfopt.cache_last_outcome();
SET auto_explain.log_min_duration = -1;
SELECT p.name, max(s.points) AS best FROM cp_scores s JOIN cp_players p ON p.id = s.player
 GROUP BY p.name ORDER BY best DESC, p.name LIMIT 3;
SELECT perfopt.cache_last_outcome();

-- A cursor is never a planner's stand-in (cursor options), and still
-- returns the rows.
BEGIN;
DECLARE c CURSOR FOR SELECT p.name, max(s.points) AS best FROM cp_scores s JOIN cp_players p ON p.id = s.player
 GROUP BY p.name ORDER BY best DESC, p.name LIMIT 3;
FETCH 2 FROM c;
FETCH 2 FROM c;
COMMIT;

-- Privileges on every hit.  Revoking a privilege in this database is DDL,
-- which invalidates every entry anyway; revoking a role membership from
-- another database does not, so the hits below are answered by valid
-- entries and only the permission checks of the stand-in refuse them: of a
-- table read by a subquery, of a view, and of a column.
CREATE ROLE cp_reader;
CREATE ROLE cp_group;
GRANT USAGE ON SCHEMA perfopt TO cp_reader;
CREATE TABLE cp_secret (id int PRIMARY KEY, name text, secret text);
INSERT INTO cp_secret VALUES (1, 'a', 'x'), (2, 'b', 'y');
SELECT perfopt.cache_table('cp_secret');
CREATE VIEW cp_best AS SELECT player, max(points) AS best FROM cp_scores GROUP BY player;
GRANT SELECT ON cp_players TO cp_reader;
GRANT SELECT (id) ON cp_secret TO cp_reader;
GRANT SELECT ON cp_scores, cp_best TO cp_group;
GRANT SELECT (id, name) ON cp_secret TO cp_group;
GRANT cp_group TO cp_reader;
SET ROLE cp_reader;
SELECT name FROM cp_players WHERE id IN (SELECT player FROM cp_scores WHERE points > 95) ORDER BY name;
SELECT name FROM cp_players WHERE id IN (SELECT player FROM cp_scores WHERE points > 95) ORDER BY name;
SELECT perfopt.cache_last_outcome();
SELECT player, best FROM cp_best ORDER BY player LIMIT 2;
SELECT player, best FROM cp_best ORDER BY player LIMIT 2;
SELECT perfopt.cache_last_outcome();
SELECT id, name FROM cp_secret ORDER BY id;
SELECT id, name FROM cp_secret ORDER BY id;
SELECT perfopt.cache_last_outcome();
SELECT id FROM cp_secret ORDER BY id;
SELECT id FROM cp_secret ORDER BY id;
SELECT perfopt.cache_last_outcome();
RESET ROLE;
\set regdb :DBNAME
\c postgres
REVOKE cp_group FROM cp_reader;
\c :regdb
\set SHOW_CONTEXT never
SET ROLE cp_reader;
SELECT name FROM cp_players WHERE id IN (SELECT player FROM cp_scores WHERE points > 95) ORDER BY name;
SELECT player, best FROM cp_best ORDER BY player LIMIT 2;
SELECT id, name FROM cp_secret ORDER BY id;
-- what is still granted is still a hit
SELECT id FROM cp_secret ORDER BY id;
SELECT perfopt.cache_last_outcome();
RESET ROLE;
-- and the cached answers themselves were valid all along
SELECT sum(entries) > 0 AS entries_still_there FROM perfopt.cache_stats WHERE query LIKE '%FROM cp_best%';

-- Row-level security enabled after caching: refused at once.
ALTER TABLE cp_players ENABLE ROW LEVEL SECURITY;
CREATE POLICY cp_none ON cp_players USING (false);
SET ROLE cp_reader;
SELECT id, name FROM cp_players ORDER BY id LIMIT 2;
SELECT perfopt.cache_last_outcome();
RESET ROLE;
ALTER TABLE cp_players DISABLE ROW LEVEL SECURITY;
DROP POLICY cp_none ON cp_players;

-- A transaction's own writes straight into a partition or an inheritance
-- child (the statement names only the parent): never answered from the
-- cache, which does not have them.
CREATE TABLE cp_ev (day int NOT NULL, n int NOT NULL) PARTITION BY RANGE (day);
CREATE TABLE cp_ev_1 PARTITION OF cp_ev FOR VALUES FROM (1) TO (10);
CREATE TABLE cp_ev_2 PARTITION OF cp_ev FOR VALUES FROM (10) TO (20);
INSERT INTO cp_ev VALUES (1, 1), (15, 2);
CREATE TABLE cp_base (v int);
CREATE TABLE cp_child () INHERITS (cp_base);
INSERT INTO cp_base VALUES (1);
INSERT INTO cp_child VALUES (10);
SELECT perfopt.cache_table('cp_ev');
SELECT perfopt.cache_table('cp_base');
SELECT sum(n) FROM cp_ev;
SELECT sum(n) FROM cp_ev;
SELECT perfopt.cache_last_outcome();
SELECT sum(v) FROM cp_base;
SELECT sum(v) FROM cp_base;
SELECT perfopt.cache_last_outcome();
BEGIN;
INSERT INTO cp_ev_2 VALUES (16, 100);
SELECT sum(n) FROM cp_ev;
SELECT perfopt.cache_last_outcome();
INSERT INTO cp_child VALUES (1000);
SELECT sum(v) FROM cp_base;
SELECT perfopt.cache_last_outcome();
ROLLBACK;
-- rolled back: the entries were never invalidated
SELECT sum(n) FROM cp_ev;
SELECT perfopt.cache_last_outcome();
SELECT sum(v) FROM cp_base;
SELECT perfopt.cache_last_outcome();
SELECT perfopt.uncache_table('cp_ev');
SELECT perfopt.uncache_table('cp_base');
DROP TABLE cp_ev, cp_base, cp_child;

-- A setting that changes the answer is in the key.
SET TimeZone = 'UTC';
SELECT count(*) FROM cp_scores WHERE points > 50;
SELECT count(*) FROM cp_scores WHERE points > 50;
SELECT perfopt.cache_last_outcome();
SET TimeZone = 'Asia/Tokyo';
SELECT count(*) FROM cp_scores WHERE points > 50;
SELECT perfopt.cache_last_outcome();
RESET TimeZone;

-- A prepared statement planned while the cache is off keeps a plan the
-- cache never looked at; turning the cache on plans it again, so it is
-- cached from then on (not refused as if its shape were not cacheable).
SET perfopt.cache_mode = off;
PREPARE cp_off AS SELECT count(*) FROM cp_scores WHERE points > 90;
EXECUTE cp_off;
SELECT perfopt.cache_last_outcome();
SET perfopt.cache_mode = rules;
EXECUTE cp_off;
SELECT perfopt.cache_last_outcome();
EXECUTE cp_off;
SELECT perfopt.cache_last_outcome();
DEALLOCATE cp_off;

-- clean up
SELECT perfopt.uncache_table('cp_scores');
SELECT perfopt.uncache_table('cp_players');
SELECT perfopt.uncache_table('cp_secret');
DROP VIEW cp_best;
DROP TABLE cp_scores, cp_players, cp_secret;
DROP OWNED BY cp_reader, cp_group;
DROP ROLE cp_reader, cp_group;
SELECT perfopt.reset_stats();
SELECT perfopt.cache_clear() >= 0 AS cleared;
DROP EXTENSION perfopt;
