-- weight: 30
-- A login.
\set uid random(1, 50000)
\set net random(0, 255)
INSERT INTO sessions (user_id, started_at, ip, user_agent)
VALUES (:uid, now(), ('10.2.' || :net || '.' || (:uid % 256))::inet, 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0');
