-- perfopt.session_state: the session state this backend holds between
-- transactions, as a transaction-mode pooler must know it.
SHOW perfopt.session_state;
-- nobody may set it
SET perfopt.session_state = 'x';

-- temp objects: made, kept across transactions, dropped
CREATE TEMP TABLE t1 (a int);
SHOW perfopt.session_state;
DROP TABLE t1;
SHOW perfopt.session_state;
-- a temp table made in an aborted transaction never existed
BEGIN;
CREATE TEMP TABLE t2 (a int);
ROLLBACK;
SHOW perfopt.session_state;
CREATE TEMP TABLE t3 (a int);
DISCARD TEMP;
SHOW perfopt.session_state;

-- session advisory locks; transaction-level ones end with the transaction
SELECT pg_advisory_xact_lock(1);
SHOW perfopt.session_state;
SELECT pg_advisory_lock(42);
SHOW perfopt.session_state;
SELECT pg_advisory_lock_shared(43);
SELECT pg_advisory_unlock(42);
SHOW perfopt.session_state;
SELECT pg_advisory_unlock_shared(43);
SHOW perfopt.session_state;
-- a session lock outlives the transaction that aborted
BEGIN;
SELECT pg_advisory_lock(44);
SELECT 1 / 0;
ROLLBACK;
SHOW perfopt.session_state;
SELECT pg_advisory_unlock_all();
SHOW perfopt.session_state;

-- LISTEN takes effect at commit, not at all if rolled back
BEGIN;
LISTEN chan_a;
ROLLBACK;
SHOW perfopt.session_state;
BEGIN;
SAVEPOINT s;
LISTEN chan_a;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SHOW perfopt.session_state;
LISTEN chan_a;
LISTEN chan_b;
SHOW perfopt.session_state;
UNLISTEN chan_a;
SHOW perfopt.session_state;
UNLISTEN *;
SHOW perfopt.session_state;

-- SQL PREPARE, and DEALLOCATE
PREPARE p1 AS SELECT 1;
SHOW perfopt.session_state;
DEALLOCATE p1;
SHOW perfopt.session_state;
PREPARE p2 AS SELECT 2;
DEALLOCATE ALL;
SHOW perfopt.session_state;

-- WITH HOLD cursors; plain cursors end with their transaction
BEGIN;
DECLARE c0 CURSOR FOR SELECT 1;
COMMIT;
SHOW perfopt.session_state;
BEGIN;
DECLARE c1 CURSOR WITH HOLD FOR SELECT 1;
COMMIT;
SHOW perfopt.session_state;
CLOSE c1;
SHOW perfopt.session_state;
BEGIN;
DECLARE c2 CURSOR WITH HOLD FOR SELECT 1;
ROLLBACK;
SHOW perfopt.session_state;

-- everything at once, then DISCARD ALL
CREATE TEMP TABLE t4 (a int);
SELECT pg_advisory_lock(45);
LISTEN chan_c;
PREPARE p3 AS SELECT 3;
DECLARE c3 CURSOR WITH HOLD FOR SELECT 1;
SHOW perfopt.session_state;
DISCARD ALL;
SHOW perfopt.session_state;
