// tests/pooler/Migration.java: pgJDBC clients (prepareThreshold=1, so the
// first execution already uses a named server statement) across a
// migration, for test_migration.py.  Arguments: pooler port, table.  Runs
// its prepared SELECT * on both server connections (a holder's transaction
// keeps one busy), prints "ready" and the results as one JSON line, waits
// for a line on stdin (the DDL runs then), does it again, adds a new
// client's execution and prints that JSON line.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

public class Migration {
    static String url;
    static String sql;

    static Connection connect() throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", "app");
        p.setProperty("password", "app-secret");
        p.setProperty("prepareThreshold", "1");
        return DriverManager.getConnection(url, p);
    }

    static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ") + "\"";
    }

    static String run(PreparedStatement ps) {
        try (ResultSet rs = ps.executeQuery()) {
            rs.next();
            return "[" + rs.getInt(1) + ", " + rs.getMetaData().getColumnCount() + "]";
        } catch (SQLException e) {
            return "[\"error\", " + quote(String.valueOf(e.getSQLState())) + ", " + quote(e.getMessage()) + "]";
        }
    }

    static Connection hold() throws SQLException {
        Connection h = connect();
        h.setAutoCommit(false);
        try (Statement st = h.createStatement()) {
            st.executeQuery("select 1").close();
        }
        return h;
    }

    static void phase(List<PreparedStatement> ps, List<String> out) throws SQLException {
        Connection h1 = hold();
        for (PreparedStatement p : ps)
            out.add(run(p));
        Connection h2 = hold();
        h1.rollback();
        for (PreparedStatement p : ps)
            out.add(run(p));
        h2.rollback();
        h1.close();
        h2.close();
    }

    public static void main(String[] args) throws Exception {
        url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/appdb";
        sql = "select pg_backend_pid() as pid, * from " + args[1] + " order by id";
        List<PreparedStatement> ps = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            Connection c = connect();
            ps.add(c.prepareStatement(sql));
        }
        List<String> before = new ArrayList<>();
        phase(ps, before);
        System.out.println("ready");
        System.out.println("[" + String.join(", ", before) + "]");
        System.out.flush();
        new BufferedReader(new InputStreamReader(System.in)).readLine();
        List<String> after = new ArrayList<>();
        phase(ps, after);
        Connection fresh = connect();
        after.add(run(fresh.prepareStatement(sql)));
        System.out.println("[" + String.join(", ", after) + "]");
    }
}
