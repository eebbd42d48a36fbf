-- other users' texts, constants, parameters and plans are private
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS perfopt;
RESET client_min_messages;
CREATE ROLE perfopt_alice;
CREATE ROLE perfopt_bob;
CREATE TABLE privacy_t (id int, secret text);
GRANT SELECT ON privacy_t TO perfopt_alice, perfopt_bob;
SELECT perfopt.reset_stats();
SELECT perfopt.reset_slow_queries();
SET perfopt.slow_query_threshold = 0;

SET ROLE perfopt_alice;
SELECT count(*) FROM privacy_t WHERE secret = 'alice-password';
RESET ROLE;
SET ROLE perfopt_bob;
SELECT count(*) FROM privacy_t WHERE id = 12345;
-- bob sees his own rows, and only counters of alice's
SELECT username, query, queryid IS NULL AS queryid_hidden, calls
  FROM perfopt.query_stats WHERE username IN ('perfopt_alice', 'perfopt_bob') ORDER BY username;
SELECT username, query, plan, plan_json IS NULL AS json_hidden
  FROM perfopt.slow_queries WHERE username = 'perfopt_alice';
SELECT username, query, plan LIKE 'Aggregate%' AS own_plan, plan_json IS NULL AS json_hidden
  FROM perfopt.slow_queries WHERE username = 'perfopt_bob' AND query LIKE '%privacy_t%';
-- resetting is not for him
SELECT perfopt.reset_stats();
SELECT perfopt.reset_slow_queries();
RESET ROLE;

-- pg_read_all_stats members see everything
GRANT pg_read_all_stats TO perfopt_bob;
SET ROLE perfopt_bob;
SELECT username, query FROM perfopt.query_stats
 WHERE username IN ('perfopt_alice', 'perfopt_bob') ORDER BY username, query COLLATE "C";
SELECT username, query FROM perfopt.slow_queries
 WHERE username = 'perfopt_alice';
RESET ROLE;

-- a role granted EXECUTE may reset
GRANT EXECUTE ON FUNCTION perfopt.reset_stats() TO perfopt_bob;
SET ROLE perfopt_bob;
SELECT perfopt.reset_stats();
RESET ROLE;
RESET perfopt.slow_query_threshold;
-- only what bob ran after his reset is left
SELECT username, query FROM perfopt.query_stats WHERE username IN ('perfopt_alice', 'perfopt_bob');

DROP TABLE privacy_t;
REVOKE EXECUTE ON FUNCTION perfopt.reset_stats() FROM perfopt_bob;
DROP ROLE perfopt_alice;
DROP ROLE perfopt_bob;
