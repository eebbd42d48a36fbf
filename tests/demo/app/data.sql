-- tests/demo/app/data.sql: deterministic sample data (setseed), about
-- 50,000 users, 300,000 scores and 200,000 sessions; loads in seconds.
-- Indexes are created by schema.sql before loading, as in a live app.
SELECT setseed(0.42);

INSERT INTO games
SELECT g, 'game ' || g, (ARRAY['puzzle', 'racing', 'strategy', 'arcade'])[1 + g % 4]
FROM generate_series(1, 20) g;

INSERT INTO users
SELECT u,
       'player' || u,
       'player' || u || '@' || (ARRAY['example.com', 'mail.test', 'games.test'])[1 + u % 3],
       (ARRAY['FR', 'DE', 'US', 'BR', 'JP', 'IN', 'NG', 'GB'])[1 + (u * 7) % 8],
       now() - (random() * interval '730 days'),
       now() - (random() * interval '30 days'),
       ('10.' || floor(random() * 4) || '.' || floor(random() * 256) || '.' || floor(random() * 256))::inet
FROM generate_series(1, 50000) u;

-- A few players play a lot: skew user_id so per-user lookups vary.
INSERT INTO scores (user_id, game_id, points, played_at)
SELECT 1 + floor(50000 * power(random(), 2))::bigint,
       1 + floor(random() * 20)::int,
       floor(random() * 100000)::int,
       now() - (random() * interval '365 days')
FROM generate_series(1, 300000);

INSERT INTO sessions (user_id, started_at, ended_at, ip, user_agent, pages)
SELECT 1 + floor(random() * 50000)::bigint,
       t, t + random() * interval '2 hours',
       ('10.' || floor(random() * 4) || '.' || floor(random() * 256) || '.' || floor(random() * 256))::inet,
       (ARRAY['Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0',
              'Mozilla/5.0 (Windows NT 10.0) Chrome/119.0',
              'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1) Safari/604.1',
              'Mozilla/5.0 (Android 14) Chrome/119.0 Mobile'])[1 + floor(random() * 4)::int],
       1 + floor(random() * 40)::int
FROM (SELECT now() - (random() * interval '90 days') AS t FROM generate_series(1, 200000)) s;

VACUUM ANALYZE;
