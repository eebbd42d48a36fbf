-- weight: 300
-- The profile page: a primary-key lookup.
\set uid random(1, 50000)
SELECT id, name, country, last_seen FROM users WHERE id = :uid;
