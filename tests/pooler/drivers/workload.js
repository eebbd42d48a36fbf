// tests/pooler/drivers/workload.js: the real-driver workload for
// node-postgres (npm pg, installed into this directory by `make deps`), run
// by tests/pooler/test_drivers.py.  The same workload as workload.py (whose
// header and test_drivers.py describe it), connection in PGHOST, PGPORT,
// PGUSER, PGPASSWORD, PGDATABASE, shape in WL_CLIENTS, WL_ROUNDS,
// WL_ACCOUNTS, WL_TOTAL, WL_BIG, WL_BULK.  One pg.Client per client, all on
// one event loop; every statement but BEGIN/COMMIT/ROLLBACK and the bulk
// load (one simple Query of many INSERTs) is a named query ({name, text,
// values}): node-postgres parses it once per connection and binds it by name
// afterwards.  Prints "FAIL ..." per wrong answer, then
// "SUMMARY key=value ...".
'use strict';
const crypto = require('crypto');
const { Client } = require('pg');

const env = (k, d) => Number(process.env[k] || d);
const N = env('WL_CLIENTS', 8), R = env('WL_ROUNDS', 12), ACCOUNTS = env('WL_ACCOUNTS', 10);
const TOTAL = env('WL_TOTAL', 10000), BIG = env('WL_BIG', 10000), BULK = env('WL_BULK', 200);

const SQL = {
  prev_token: 'SELECT token FROM drv_tokens WHERE client = $1 AND round = $2',
  add_token: 'INSERT INTO drv_tokens (client, round, token) VALUES ($1, $2, $3)',
  move: 'UPDATE drv_accounts SET balance = balance + $1 WHERE id = $2 RETURNING balance',
  balances: 'SELECT id, balance FROM drv_accounts WHERE id IN ($1, $2) ORDER BY id',
  total: 'SELECT sum(balance)::int, pg_backend_pid() FROM drv_accounts',
  boom: 'SELECT 10 / (id - $1) FROM generate_series(1, 3) AS id',
  big: "SELECT id, repeat('x', id % 97) FROM generate_series(1, $1) AS id ORDER BY id",
  bulk_check: "SELECT count(*)::int, string_agg(v, ',' ORDER BY k) FROM drv_bulk WHERE client = $1",
  final: 'SELECT (SELECT sum(balance)::int FROM drv_accounts), (SELECT count(*)::int FROM drv_tokens)',
};

const n = {
  txns: 0, ryw_txn: 0, ryw_stmt: 0, sums: 0, rollbacks: 0, large: 0, bulk: 0, savepoints: 0, moved: 0, prepared: 0,
};
const failures = [];
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

function check(key, cond, what, expected, got) {
  if (cond) n[key]++;
  else failures.push(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(got)}`);
  return cond;
}

// the transfer of client i in round r: [debited id, credited id, amount]
function plan(i, r) {
  const a = (i * 7 + r * 3) % ACCOUNTS;
  const b = (a + 1 + (i + r) % (ACCOUNTS - 1)) % ACCOUNTS;
  return [a, b, 1 + (i * 13 + r * 5) % 50];
}

async function q(c, name, ...values) {
  n.prepared++;
  const res = await c.query({ name: 'drv_' + name, text: SQL[name], values, rowMode: 'array' });
  return res.rows;
}

async function fails(promise) {
  try {
    await promise;
    return 'none';
  } catch (e) {
    return e.code || String(e);
  }
}

// a many-statement query of INSERTs into drv_bulk
const inserts = (rows) => rows.map(([c, k, v]) => `INSERT INTO drv_bulk (client, k, v) VALUES (${c}, ${k}, '${v}');`)
  .join('\n');

async function transferRound(c, i, r, tokens, pids) {
  const tag = `client ${i} round ${r}`;
  await c.query('BEGIN');
  if (r > 0) {
    const got = await q(c, 'prev_token', i, r - 1);
    check('ryw_txn', same(got, [[tokens[r - 1]]]), tag + ": previous transaction's token", tokens[r - 1], got);
  }
  tokens.push(`node-postgres:${i}:${r}:${crypto.randomBytes(8).toString('hex')}`);
  await q(c, 'add_token', i, r, tokens[r]);
  let got = await q(c, 'prev_token', i, r);
  check('ryw_stmt', same(got, [[tokens[r]]]), tag + ': token written by this transaction', tokens[r], got);
  if (r % 4 === 1) await failedSavepoint(c, i, r, tokens[r]);
  const [a, b, amt] = plan(i, r);
  const after = {};
  for (const [acct, delta] of [[a, -amt], [b, amt]].sort((x, y) => x[0] - y[0])) {
    const rows = await q(c, 'move', delta, acct);
    after[acct] = rows.length === 1 ? rows[0][0] : rows;
  }
  got = await q(c, 'balances', a, b);
  const want = [a, b].sort((x, y) => x - y).map((k) => [k, after[k]]);
  check('ryw_stmt', same(got, want), tag + ': balances after the updates', want, got);
  got = await q(c, 'total');
  check('sums', got.length === 1 && got[0][0] === TOTAL, tag + ': total inside the transaction', TOTAL, got);
  if (got.length) pids.add(got[0][1]);
  await c.query('COMMIT');
  n.txns++;
}

// A transaction that writes, fails, is rolled back; its writes must be gone.
// Most rounds fail with a division by zero after a first row; round 6 in
// the middle of a many-statement query (a duplicate key).
async function failedRound(c, i, r) {
  await c.query('BEGIN');
  await q(c, 'add_token', i, 1000 + r, 'doomed');
  let want, code;
  if (r % 8 === 6) {
    want = '23505';
    code = await fails(c.query(inserts([[100 + i, r, 'first'], [100 + i, r, 'duplicate'], [100 + i, r + 1, 'never']])));
  } else {
    want = '22012';
    code = await fails(q(c, 'boom', 2));
  }
  await c.query('ROLLBACK');
  const got = (await q(c, 'prev_token', i, 1000 + r)).concat(await q(c, 'bulk_check', 100 + i));
  check('rollbacks', code === want && same(got, [[0, null]]),
    `client ${i} round ${r}: error ${want}, then ROLLBACK undid the writes`, [want, [[0, null]]], [code, got]);
}

// Inside a transaction: a savepoint whose write fails and is rolled back to;
// the transaction's earlier write stays, the savepoint's is gone.
async function failedSavepoint(c, i, r, token) {
  await c.query('SAVEPOINT drv_sp');
  const code = await fails((async () => {
    await q(c, 'add_token', i, 2000 + r, 'doomed');
    await q(c, 'boom', 2);
  })());
  await c.query('ROLLBACK TO SAVEPOINT drv_sp');
  const got = (await q(c, 'prev_token', i, r)).concat(await q(c, 'prev_token', i, 2000 + r));
  check('savepoints', code === '22012' && same(got, [[token]]),
    `client ${i} round ${r}: error 22012 in a savepoint, rolled back to it`, ['22012', [[token]]], [code, got]);
}

async function bigResult(c, i) {
  await c.query('BEGIN');
  const rows = await q(c, 'big', BIG);
  await c.query('COMMIT');
  const bad = rows.filter((row, k) => row[0] !== k + 1 || row[1] !== 'x'.repeat((k + 1) % 97));
  check('large', rows.length === BIG && bad.length === 0, `client ${i}: ${BIG}-row result`, BIG,
    [rows.length, bad.slice(0, 2)]);
}

// BULK rows in one simple Query of BULK INSERT statements, read back in the
// same transaction
async function bulkLoad(c, i) {
  const vals = [...Array(BULK).keys()].map((k) => `b${i}-${k}`);
  await c.query('BEGIN');
  await c.query(inserts(vals.map((v, k) => [i, k, v])));
  const got = await q(c, 'bulk_check', i);
  await c.query('COMMIT');
  const want = [[BULK, vals.join(',')]];
  check('bulk', same(got, want), `client ${i}: ${BULK} rows loaded by one many-statement query`, BULK,
    got.length === 1 ? got[0][0] : got);
}

async function client(c, i) {
  const tokens = [], pids = new Set();
  try {
    for (let r = 0; r < R; r++) {
      if (r % 4 === 2) await failedRound(c, i, r);
      await transferRound(c, i, r, tokens, pids);
      if (r === 1) await bigResult(c, i);
      if (r === 3) await bulkLoad(c, i);
    }
    if (pids.size > 1) n.moved++;
  } catch (e) {
    failures.push(`client ${i} stopped: ${e.code || ''} ${e.message}`);
  }
  await c.end().catch(() => {});
}

async function main() {
  let final = [[null, null]];
  try {
    const clients = [];
    for (let i = 0; i < N; i++) {
      const c = new Client({ connectionTimeoutMillis: 60000 });   // PG* from the environment
      await c.connect();
      clients.push(c);
    }
    await Promise.all(clients.map((c, i) => client(c, i)));
    const c = new Client();
    await c.connect();
    final = await q(c, 'final');
    await c.end();
  } catch (e) {
    failures.push(`final check: ${e.code || ''} ${e.message}`);
  }
  for (const f of failures) console.log('FAIL ' + f.replace(/\n/g, ' | '));
  const fields = { driver: 'node-postgres', clients: N, rounds: R, ...n,
    final_sum: final[0][0], final_tokens: final[0][1], failures: failures.length };
  console.log('SUMMARY ' + Object.entries(fields).map(([k, v]) => `${k}=${v}`).join(' '));
}

main();
