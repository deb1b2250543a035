// node-postgres against one server (direct or through Warden): parameters
// and types, a cursor read in batches, COPY FROM and TO as streams.
// Prints JSON; the test compares the direct and the Warden run.
// Usage: node pg.mjs PORT USER DATABASE (password in PW)
import pg from "pg";
import Cursor from "pg-cursor";
import copyStreams from "pg-copy-streams";
import { pipeline } from "node:stream/promises";
import { Readable, Writable } from "node:stream";

const [port, user, database] = process.argv.slice(2);
const client = new pg.Client({ host: "127.0.0.1", port: Number(port), user, database, password: process.env.PW });
await client.connect();
const out = {};
const typed = await client.query("SELECT $1::int AS i, $2::numeric AS n, $3::jsonb AS j, $4::text[] AS a", [7, "1.50", { k: [1, 2] }, ["x", "y"]]);
out.types = typed.rows[0];
const cursor = client.query(new Cursor("SELECT id, name FROM people ORDER BY id LIMIT 250"));
const batches = [];
for (;;) {
  const rows = await cursor.read(100);
  if (rows.length === 0) break;
  batches.push([rows.length, rows[0].name]);
}
await cursor.close();
out.cursor = batches;
await client.query("CREATE TABLE node_t (a int, b text)");
const lines = Array.from({ length: 500 }, (_, i) => `${i}\tline ${i}\n`);
await pipeline(Readable.from(lines), client.query(copyStreams.from("COPY node_t FROM STDIN")));
out.copied = (await client.query("SELECT count(*)::int AS n, sum(a)::int AS s FROM node_t")).rows[0];
let text = "";
await pipeline(
  client.query(copyStreams.to("COPY (SELECT * FROM node_t WHERE a < 3 ORDER BY a) TO STDOUT")),
  new Writable({ write(chunk, _enc, done) { text += chunk; done(); } }),
);
out.copy_out = text;
await client.query("DROP TABLE node_t");
await client.end();
console.log(JSON.stringify(out));
