// tests/pooler/migration.js: node-postgres clients with a named statement
// ({name, text}) across a migration, for test_migration.py.  Arguments:
// pooler port, table.  Runs the statement on both server connections (a
// holder's transaction keeps one busy), prints "ready" and the results as
// one JSON line, waits for a line on stdin (the DDL runs then), does it
// again, adds a new client's execution and prints that JSON line.
const { Client } = require('pg');
const readline = require('readline');

const port = Number(process.argv[2]);
const q = { name: 'mig_q', text: 'select pg_backend_pid() as pid, * from ' + process.argv[3] + ' order by id' };

async function connect() {
  const c = new Client({ host: '127.0.0.1', port, user: 'app', password: 'app-secret', database: 'appdb' });
  await c.connect();
  return c;
}

async function run(c) {
  try {
    const r = await c.query(q);
    return [r.rows[0].pid, r.fields.length];
  } catch (e) {
    return ['error', e.code || '', e.message];
  }
}

async function hold() {
  const h = await connect();
  await h.query('BEGIN; SELECT 1');
  return h;
}

async function phase(clients, out) {
  const h1 = await hold();
  for (const c of clients) out.push(await run(c));
  const h2 = await hold();
  await h1.query('ROLLBACK');
  for (const c of clients) out.push(await run(c));
  await h2.query('ROLLBACK');
  await h1.end();
  await h2.end();
}

async function main() {
  const clients = [];
  for (let i = 0; i < 4; i++) clients.push(await connect());
  const before = [];
  await phase(clients, before);
  console.log('ready');
  console.log(JSON.stringify(before));
  const rl = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => rl.once('line', resolve));
  rl.close();
  const after = [];
  await phase(clients, after);
  const fresh = await connect();
  after.push(await run(fresh));
  await fresh.end();
  for (const c of clients) await c.end();
  console.log(JSON.stringify(after));
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
