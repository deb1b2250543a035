// pgjdbc against one server (direct or through Warden): metadata, a batch,
// binary transfer of server-prepared statements, CopyManager both ways,
// a query timeout (cancel) and large objects (the fast-path interface).
// Prints one line per check; the test compares the direct and Warden runs.
// Usage: java -cp postgresql.jar PgJdbc.java PORT USER DATABASE (password in PW)
import java.io.*;
import java.sql.*;
import java.util.*;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;
import org.postgresql.largeobject.*;

public class PgJdbc {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/" + args[2]
            + "?sslmode=disable&prepareThreshold=1&binaryTransfer=true";
        try (Connection c = DriverManager.getConnection(url, args[1], System.getenv("PW"))) {
            DatabaseMetaData meta = c.getMetaData();
            try (ResultSet tables = meta.getTables(null, "public", "%", new String[] {"TABLE"})) {
                List<String> names = new ArrayList<>();
                while (tables.next()) names.add(tables.getString("TABLE_NAME"));
                System.out.println("tables " + names);
            }
            try (Statement s = c.createStatement()) {
                s.execute("CREATE TABLE jdbc_t (id int primary key, label text, at timestamptz, n numeric)");
            }
            c.setAutoCommit(false);
            try (PreparedStatement p = c.prepareStatement("INSERT INTO jdbc_t VALUES (?, ?, ?, ?)")) {
                for (int i = 0; i < 100; i++) {
                    p.setInt(1, i);
                    p.setString(2, "row " + i);
                    p.setTimestamp(3, new Timestamp(1_700_000_000_000L + i * 1000L));
                    p.setBigDecimal(4, new java.math.BigDecimal(i + ".25"));
                    p.addBatch();
                }
                System.out.println("batch " + Arrays.stream(p.executeBatch()).sum());
            }
            c.commit();
            c.setAutoCommit(true);
            try (PreparedStatement p = c.prepareStatement("SELECT label, at, n FROM jdbc_t WHERE id = ?")) {
                for (int i : new int[] {3, 42, 99, 3, 42}) {
                    p.setInt(1, i);
                    try (ResultSet r = p.executeQuery()) {
                        r.next();
                        System.out.println("row " + r.getString(1) + " " + r.getTimestamp(2).getTime() + " " + r.getBigDecimal(3));
                    }
                }
            }
            CopyManager copy = c.unwrap(PGConnection.class).getCopyAPI();
            long in = copy.copyIn("COPY jdbc_t (id, label) FROM STDIN", new StringReader("1000\tcopied\n1001\tcopied too\n"));
            StringWriter out = new StringWriter();
            copy.copyOut("COPY (SELECT id, label FROM jdbc_t WHERE id >= 1000 ORDER BY id) TO STDOUT", out);
            System.out.println("copy " + in + " " + out.toString().replace("\n", "|"));
            try (Statement s = c.createStatement()) {
                s.setQueryTimeout(1);
                s.execute("SELECT pg_sleep(20)");
                System.out.println("timeout not reached");
            } catch (SQLException e) {
                System.out.println("timeout " + e.getSQLState());
            }
            c.setAutoCommit(false);
            LargeObjectManager lo = c.unwrap(PGConnection.class).getLargeObjectAPI();
            long oid = lo.createLO(LargeObjectManager.READWRITE);
            try (LargeObject obj = lo.open(oid, LargeObjectManager.WRITE)) {
                obj.write("large object bytes".getBytes());
            }
            try (LargeObject obj = lo.open(oid, LargeObjectManager.READ)) {
                System.out.println("lo " + new String(obj.read(100)));
            }
            lo.delete(oid);
            c.commit();
        }
    }
}
