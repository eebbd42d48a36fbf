-- weight: 1
-- The fraud job: for the newest players of a country, how many sessions
-- came from the address they signed up from.  The subquery on the unindexed
-- sessions.ip runs once per player, a full scan each time: the slowest
-- statement of the app.
\set n random(0, 7)
SELECT u.id, u.name,
       (SELECT count(*) FROM sessions se WHERE se.ip = u.signup_ip) AS sessions_from_signup_ip
  FROM users u
 WHERE u.country = (ARRAY['FR', 'DE', 'US', 'BR', 'JP', 'IN', 'NG', 'GB'])[:n + 1]
 ORDER BY u.created_at DESC
 LIMIT 50;
