-- weight: 1
-- The marketing dashboard: last month's activity per country.
\set days random(20, 40)
SELECT u.country, count(DISTINCT s.user_id) AS players,
       round(avg(s.points)) AS avg_points, sum(se.pages) AS pages
  FROM scores s
  JOIN users u ON u.id = s.user_id
  JOIN sessions se ON se.user_id = u.id
 WHERE s.played_at > now() - make_interval(days => :days)
 GROUP BY u.country
 ORDER BY players DESC;
