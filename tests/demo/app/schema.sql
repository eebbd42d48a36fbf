-- tests/demo/app/schema.sql: the demo's sample app, a small game site:
-- players, games, scores with a leaderboard, and login sessions.
-- Indexes are what a team would have shipped; sessions.ip is deliberately
-- left unindexed so the workload has
-- honest slow statements for perfopt to find.
CREATE TABLE users (
	id         bigint PRIMARY KEY,
	name       text NOT NULL,
	email      text NOT NULL UNIQUE,
	country    text NOT NULL,
	created_at timestamptz NOT NULL,
	last_seen  timestamptz,
	signup_ip  inet NOT NULL
);

CREATE TABLE games (
	id    int PRIMARY KEY,
	name  text NOT NULL,
	genre text NOT NULL
);

CREATE TABLE scores (
	id        bigserial PRIMARY KEY,
	user_id   bigint NOT NULL REFERENCES users,
	game_id   int NOT NULL REFERENCES games,
	points    int NOT NULL,
	played_at timestamptz NOT NULL
);
CREATE INDEX scores_game_points ON scores (game_id, points DESC);
CREATE INDEX scores_user_played ON scores (user_id, played_at DESC);

CREATE TABLE sessions (
	id         bigserial PRIMARY KEY,
	user_id    bigint NOT NULL REFERENCES users,
	started_at timestamptz NOT NULL,
	ended_at   timestamptz,
	ip         inet NOT NULL,
	user_agent text NOT NULL,
	pages      int NOT NULL DEFAULT 1
);
CREATE INDEX sessions_user ON sessions (user_id);
