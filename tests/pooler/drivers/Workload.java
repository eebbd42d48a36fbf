/*
 * tests/pooler/drivers/Workload.java: the real-driver workload for pgJDBC
 * (Debian's /usr/share/java/postgresql.jar), compiled by
 * tests/pooler/test_drivers.py into its temporary directory and run there.
 * The same workload as workload.py (whose header and test_drivers.py
 * describe it), connection in PGHOST, PGPORT, PGUSER, PGPASSWORD,
 * PGDATABASE, shape in WL_CLIENTS, WL_ROUNDS, WL_ACCOUNTS, WL_TOTAL, WL_BIG,
 * WL_BULK.  One connection per client thread, autocommit off (the driver
 * sends BEGIN), prepareThreshold=1 so that every PreparedStatement is a named
 * server statement from its first execution; the large result is read
 * through a portal, 2000 rows per fetch; the bulk load is one batch.  Prints "FAIL ..." per wrong answer, then
 * "SUMMARY key=value ...".
 */
import java.security.SecureRandom;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;

public class Workload {
	static final int N = env("WL_CLIENTS", 8), R = env("WL_ROUNDS", 12), ACCOUNTS = env("WL_ACCOUNTS", 10);
	static final int TOTAL = env("WL_TOTAL", 10000), BIG = env("WL_BIG", 10000), BULK = env("WL_BULK", 200);
	static final Map<String, String> SQL = new HashMap<>();
	static {
		SQL.put("prev_token", "SELECT token FROM drv_tokens WHERE client = ? AND round = ?");
		SQL.put("add_token", "INSERT INTO drv_tokens (client, round, token) VALUES (?, ?, ?)");
		SQL.put("move", "UPDATE drv_accounts SET balance = balance + ? WHERE id = ? RETURNING balance");
		SQL.put("balances", "SELECT id, balance FROM drv_accounts WHERE id IN (?, ?) ORDER BY id");
		SQL.put("total", "SELECT sum(balance)::int, pg_backend_pid() FROM drv_accounts");
		SQL.put("boom", "SELECT 10 / (id - ?) FROM generate_series(1, 3) AS id");
		SQL.put("big", "SELECT id, repeat('x', id % 97) FROM generate_series(1, ?) AS id ORDER BY id");
		SQL.put("bulk_insert", "INSERT INTO drv_bulk (client, k, v) VALUES (?, ?, ?)");
		SQL.put("bulk_check", "SELECT count(*)::int, string_agg(v, ',' ORDER BY k) FROM drv_bulk WHERE client = ?");
		SQL.put("final", "SELECT (SELECT sum(balance)::int FROM drv_accounts), (SELECT count(*)::int FROM drv_tokens)");
	}
	static final Map<String, Integer> COUNTS = new LinkedHashMap<>();
	static {
		for (String k : new String[] {"txns", "ryw_txn", "ryw_stmt", "sums", "rollbacks", "large", "bulk", "savepoints",
				"moved", "prepared"})
			COUNTS.put(k, 0);
	}
	static final List<String> FAILURES = new ArrayList<>();
	static final SecureRandom RANDOM = new SecureRandom();

	static int env(String name, int dflt) {
		String v = System.getenv(name);
		return v == null ? dflt : Integer.parseInt(v);
	}

	static synchronized void add(String key) {
		COUNTS.put(key, COUNTS.get(key) + 1);
	}

	static synchronized void fail(String text) {
		FAILURES.add(text);
	}

	static boolean check(String key, boolean cond, String what, Object expected, Object got) {
		if (cond)
			add(key);
		else
			fail(what + ": expected " + expected + ", got " + got);
		return cond;
	}

	static List<Object> row(Object... v) {
		return Arrays.asList(v);
	}

	/* One client: its connection and its statements, each prepared once. */
	static class Db {
		final Connection conn;
		final Map<String, PreparedStatement> stmts = new HashMap<>();

		Db() throws SQLException {
			Properties props = new Properties();
			props.setProperty("user", System.getenv("PGUSER"));
			props.setProperty("password", System.getenv("PGPASSWORD"));
			props.setProperty("prepareThreshold", "1");
			props.setProperty("connectTimeout", "60");
			String url = "jdbc:postgresql://" + System.getenv("PGHOST") + ":" + System.getenv("PGPORT") + "/"
				+ System.getenv("PGDATABASE");
			conn = DriverManager.getConnection(url, props);
			conn.setAutoCommit(false);
			for (Map.Entry<String, String> e : SQL.entrySet())
				stmts.put(e.getKey(), conn.prepareStatement(e.getValue()));
			stmts.get("big").setFetchSize(2000);
		}

		List<List<Object>> q(String name, Object... args) throws SQLException {
			add("prepared");
			PreparedStatement ps = stmts.get(name);
			for (int k = 0; k < args.length; k++)
				ps.setObject(k + 1, args[k]);
			List<List<Object>> out = new ArrayList<>();
			if (!ps.execute())
				return out;
			try (ResultSet rs = ps.getResultSet()) {
				int cols = rs.getMetaData().getColumnCount();
				while (rs.next()) {
					List<Object> r = new ArrayList<>();
					for (int c = 1; c <= cols; c++)
						r.add(rs.getObject(c));
					out.add(r);
				}
			}
			return out;
		}

		String fails(String name, Object... args) {
			try {
				q(name, args);
				return "none";
			} catch (SQLException e) {
				return e.getSQLState();
			}
		}

		/* a batch of (client, k, v) rows, prepared once: pipelined Bind/Execute, one Sync */
		int batch(List<List<Object>> rows) throws SQLException {
			PreparedStatement ps = stmts.get("bulk_insert");
			for (List<Object> r : rows) {
				for (int k = 0; k < 3; k++)
					ps.setObject(k + 1, r.get(k));
				ps.addBatch();
			}
			add("prepared");
			int n = 0;
			for (int c : ps.executeBatch())
				n += c;
			return n;
		}
	}

	/* the transfer of client i in round r: {debited id, credited id, amount} */
	static int[] plan(int i, int r) {
		int a = (i * 7 + r * 3) % ACCOUNTS;
		int b = (a + 1 + (i + r) % (ACCOUNTS - 1)) % ACCOUNTS;
		return new int[] {a, b, 1 + (i * 13 + r * 5) % 50};
	}

	static void transferRound(Db db, int i, int r, List<String> tokens, Set<Object> pids) throws SQLException {
		String tag = "client " + i + " round " + r;
		if (r > 0) {
			List<List<Object>> got = db.q("prev_token", i, r - 1);
			check("ryw_txn", got.equals(List.of(row(tokens.get(r - 1)))), tag + ": previous transaction's token",
				tokens.get(r - 1), got);
		}
		byte[] rnd = new byte[8];
		RANDOM.nextBytes(rnd);
		StringBuilder hex = new StringBuilder();
		for (byte x : rnd)
			hex.append(String.format("%02x", x));
		tokens.add("pgjdbc:" + i + ":" + r + ":" + hex);
		db.q("add_token", i, r, tokens.get(r));
		List<List<Object>> got = db.q("prev_token", i, r);
		check("ryw_stmt", got.equals(List.of(row(tokens.get(r)))), tag + ": token written by this transaction",
			tokens.get(r), got);
		if (r % 4 == 1)
			failedSavepoint(db, i, r, tokens.get(r));
		int[] p = plan(i, r);
		TreeMap<Integer, Object> after = new TreeMap<>();
		int[][] moves = p[0] < p[1] ? new int[][] {{p[0], -p[2]}, {p[1], p[2]}} : new int[][] {{p[1], p[2]}, {p[0], -p[2]}};
		for (int[] m : moves) {
			List<List<Object>> rows = db.q("move", m[1], m[0]);
			after.put(m[0], rows.size() == 1 ? rows.get(0).get(0) : rows);
		}
		got = db.q("balances", p[0], p[1]);
		List<List<Object>> want = new ArrayList<>();
		for (Map.Entry<Integer, Object> e : after.entrySet())
			want.add(row(e.getKey(), e.getValue()));
		check("ryw_stmt", got.equals(want), tag + ": balances after the updates", want, got);
		got = db.q("total");
		check("sums", got.size() == 1 && Integer.valueOf(TOTAL).equals(got.get(0).get(0)),
			tag + ": total inside the transaction", TOTAL, got);
		if (!got.isEmpty())
			pids.add(got.get(0).get(1));
		db.conn.commit();
		add("txns");
	}

	/*
	 * A transaction that writes, fails, is rolled back; its writes must be
	 * gone.  Most rounds fail with a division by zero after a first row;
	 * round 6 in the middle of a batch (a duplicate key).
	 */
	static void failedRound(Db db, int i, int r) throws SQLException {
		db.q("add_token", i, 1000 + r, "doomed");
		String want, code;
		if (r % 8 == 6) {
			want = "23505";
			code = "none";
			try {
				db.batch(List.of(row(100 + i, r, "first"), row(100 + i, r, "duplicate"), row(100 + i, r + 1, "never")));
			} catch (SQLException e) {
				/* a BatchUpdateException carries the server's error as its next exception */
				code = e.getNextException() != null ? e.getNextException().getSQLState() : e.getSQLState();
			}
		} else {
			want = "22012";
			code = db.fails("boom", 2);
		}
		db.conn.rollback();
		List<List<Object>> got = db.q("prev_token", i, 1000 + r);
		got.addAll(db.q("bulk_check", 100 + i));
		check("rollbacks", want.equals(code) && got.equals(List.of(row(0, null))),
			"client " + i + " round " + r + ": error " + want + ", then ROLLBACK undid the writes",
			want + " and [[0, null]]", code + " and " + got);
	}

	/*
	 * Inside a transaction: a savepoint (Connection.setSavepoint) whose write
	 * fails and is rolled back to; the transaction's earlier write stays, the
	 * savepoint's is gone.
	 */
	static void failedSavepoint(Db db, int i, int r, String token) throws SQLException {
		java.sql.Savepoint sp = db.conn.setSavepoint();
		String code = "none";
		try {
			db.q("add_token", i, 2000 + r, "doomed");
			db.q("boom", 2);
		} catch (SQLException e) {
			code = e.getSQLState();
		}
		db.conn.rollback(sp);
		List<List<Object>> got = db.q("prev_token", i, r);
		got.addAll(db.q("prev_token", i, 2000 + r));
		check("savepoints", "22012".equals(code) && got.equals(List.of(row(token))),
			"client " + i + " round " + r + ": error 22012 in a savepoint, rolled back to it", "22012 and " + token,
			code + " and " + got);
	}

	static void bigResult(Db db, int i) throws SQLException {
		List<List<Object>> rows = db.q("big", BIG);
		db.conn.commit();
		List<Object> bad = new ArrayList<>();
		for (int k = 0; k < rows.size() && bad.size() < 2; k++)
			if (!rows.get(k).equals(row(k + 1, "x".repeat((k + 1) % 97))))
				bad.add(rows.get(k));
		check("large", rows.size() == BIG && bad.isEmpty(), "client " + i + ": " + BIG + "-row result", BIG,
			rows.size() + " " + bad);
	}

	/* BULK rows through one JDBC batch (Bind/Execute pipelined, one Sync), read back in the same transaction */
	static void bulkLoad(Db db, int i) throws SQLException {
		List<List<Object>> rows = new ArrayList<>();
		StringBuilder all = new StringBuilder();
		for (int k = 0; k < BULK; k++) {
			String v = "b" + i + "-" + k;
			all.append(k > 0 ? "," : "").append(v);
			rows.add(row(i, k, v));
		}
		int inserted = db.batch(rows);
		List<List<Object>> got = db.q("bulk_check", i);
		db.conn.commit();
		check("bulk", inserted == BULK && got.equals(List.of(row(BULK, all.toString()))),
			"client " + i + ": " + BULK + " rows loaded by one batch", BULK + " rows",
			inserted + " inserted, read back " + (got.size() == 1 ? got.get(0).get(0) : got));
	}

	static void client(Db db, int i) {
		List<String> tokens = new ArrayList<>();
		Set<Object> pids = new HashSet<>();
		try {
			for (int r = 0; r < R; r++) {
				if (r % 4 == 2)
					failedRound(db, i, r);
				transferRound(db, i, r, tokens, pids);
				if (r == 1)
					bigResult(db, i);
				if (r == 3)
					bulkLoad(db, i);
			}
			if (pids.size() > 1)
				add("moved");
		} catch (Exception e) {
			fail("client " + i + " stopped: " + e);
		}
		try {
			db.conn.close();
		} catch (SQLException e) {
			fail("client " + i + " close: " + e);
		}
	}

	public static void main(String[] args) throws Exception {
		List<List<Object>> fin = List.of(Arrays.asList((Object) null, null));
		try {
			List<Db> dbs = new ArrayList<>();
			for (int i = 0; i < N; i++)
				dbs.add(new Db());
			List<Thread> threads = new ArrayList<>();
			for (int i = 0; i < N; i++) {
				final int k = i;
				Thread t = new Thread(() -> client(dbs.get(k), k));
				t.start();
				threads.add(t);
			}
			for (Thread t : threads)
				t.join();
			Db db = new Db();
			fin = db.q("final");
			db.conn.close();
		} catch (Exception e) {
			fail("final check: " + e);
		}
		StringBuilder out = new StringBuilder();
		for (String f : FAILURES)
			out.append("FAIL ").append(f.replace("\n", " | ")).append('\n');
		out.append("SUMMARY driver=pgjdbc clients=").append(N).append(" rounds=").append(R);
		for (Map.Entry<String, Integer> e : COUNTS.entrySet())
			out.append(' ').append(e.getKey()).append('=').append(e.getValue());
		out.append(" final_sum=").append(fin.get(0).get(0)).append(" final_tokens=").append(fin.get(0).get(1));
		out.append(" failures=").append(FAILURES.size());
		System.out.println(out);
	}
}
