-- weight: 150
-- A page view in an open session.
\set sid random(1, 200000)
UPDATE sessions SET pages = pages + 1, ended_at = now() WHERE id = :sid;
