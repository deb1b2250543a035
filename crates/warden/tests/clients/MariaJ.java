// MariaDB Connector/J against one server (direct or through Warden): server
// prepared statements, a batch, and a query timeout (Connector/J sends
// KILL QUERY <thread id> on a second connection). Prints one line per check.
// Usage: java -cp mariadb-java-client.jar MariaJ.java PORT USER (password in PW)
import java.sql.*;

public class MariaJ {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:mariadb://127.0.0.1:" + args[0] + "/orders?useServerPrepStmts=true";
        try (Connection c = DriverManager.getConnection(url, args[1], System.getenv("PW"))) {
            try (PreparedStatement p = c.prepareStatement("SELECT name, qty FROM items WHERE qty > ? ORDER BY id")) {
                p.setInt(1, 4);
                try (ResultSet r = p.executeQuery()) {
                    while (r.next()) System.out.println("row " + r.getString(1) + " " + r.getInt(2));
                }
            }
            try (PreparedStatement p = c.prepareStatement("INSERT INTO items (name, qty) VALUES (?, ?)")) {
                for (int i = 0; i < 10; i++) {
                    p.setString(1, "jdbc" + i);
                    p.setInt(2, i);
                    p.addBatch();
                }
                System.out.println("batch " + p.executeBatch().length);
            }
            try (Statement s = c.createStatement()) {
                s.setQueryTimeout(1);
                try (ResultSet r = s.executeQuery("SELECT SLEEP(20)")) {
                    r.next();
                    System.out.println("sleep returned " + r.getInt(1));
                }
            } catch (SQLTimeoutException e) {
                System.out.println("timeout");
            }
            try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT COUNT(*) FROM items")) {
                r.next();
                System.out.println("count " + r.getInt(1));
            }
        }
    }
}
