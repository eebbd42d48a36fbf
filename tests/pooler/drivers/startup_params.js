// tests/pooler/startup_params.js: node-postgres clients with statement_timeout
// and options (search_path) through the pooler on port argv[2], pool mode
// argv[3]; prints [[expected, shown, value of t], ...] as JSON.
// Transaction mode: five clients at once, three rounds over them; session
// mode: three sessions one after another.
const { Client } = require('pg');

function client(port, ms) {
  return new Client({ host: '127.0.0.1', port, user: 'app', password: 'app-secret', database: 'appdb',
                      statement_timeout: ms, options: '-c search_path=s1' });
}

async function see(c, ms) {
  const t = await c.query('show statement_timeout');
  const v = await c.query({ text: 'select v from t', name: 'node_t' });
  return [ms + 'ms', t.rows[0].statement_timeout, v.rows[0].v];
}

async function main() {
  const port = Number(process.argv[2]);
  const seen = [];
  if (process.argv[3] === 'transaction') {
    const conns = [];
    for (let i = 0; i < 5; i++) {
      const c = client(port, 5201 + i);
      await c.connect();
      conns.push([c, 5201 + i]);
    }
    for (let r = 0; r < 3; r++)
      for (const [c, ms] of conns)
        seen.push(await see(c, ms));
    for (const [c] of conns)
      await c.end();
  } else {
    for (let i = 0; i < 3; i++) {
      const c = client(port, 5100 + i);
      await c.connect();
      seen.push(await see(c, 5100 + i));
      await c.end();
    }
  }
  console.log(JSON.stringify(seen));
}

main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
