-- weight: 200
-- A game's leaderboard: each player's best score, top 10.  Reads every
-- score of the game, so it is the heaviest frequent statement.  Players
-- look at the board after each game and spectators refresh it: about
-- seven views per finished game (submit_score).
\set gid random(1, 20)
SELECT u.name, max(s.points) AS best
  FROM scores s JOIN users u ON u.id = s.user_id
 WHERE s.game_id = :gid
 GROUP BY u.name
 ORDER BY best DESC
 LIMIT 10;
