-- weight: 10
-- Support looks up the sessions of an IP address.  sessions.ip has no
-- index: every call scans the whole table (perfopt's top statements show it).
\set a random(0, 3)
\set b random(0, 255)
\set c random(0, 255)
SELECT id, user_id, started_at, user_agent
  FROM sessions
 WHERE ip = ('10.' || :a || '.' || :b || '.' || :c)::inet
 ORDER BY started_at DESC;
