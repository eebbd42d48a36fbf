-- weight: 200
-- A player's last games (index on scores (user_id, played_at)).
\set uid random(1, 50000)
SELECT g.name, s.points, s.played_at
  FROM scores s JOIN games g ON g.id = s.game_id
 WHERE s.user_id = :uid
 ORDER BY s.played_at DESC
 LIMIT 10;
