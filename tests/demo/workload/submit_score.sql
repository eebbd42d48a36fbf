-- weight: 30
-- A finished game: record the score and touch the player.
\set uid random(1, 50000)
\set gid random(1, 20)
\set points random(0, 99999)
BEGIN;
INSERT INTO scores (user_id, game_id, points, played_at) VALUES (:uid, :gid, :points, now());
UPDATE users SET last_seen = now() WHERE id = :uid;
END;
