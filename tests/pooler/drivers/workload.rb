# tests/pooler/drivers/workload.rb: the real-driver workload for ruby-pg, run
# by tests/pooler/test_drivers.py.  The same workload as workload.py (whose
# header and test_drivers.py describe it), connection in PGHOST, PGPORT,
# PGUSER, PGPASSWORD, PGDATABASE, shape in WL_CLIENTS, WL_ROUNDS,
# WL_ACCOUNTS, WL_TOTAL, WL_BIG, WL_BULK.  One PG::Connection per client
# thread; each connection prepares every statement once (PQprepare, outside
# any transaction) and runs them with exec_prepared; the bulk load is a COPY.  Prints "FAIL ..." per wrong
# answer, then "SUMMARY key=value ...".
require 'pg'
require 'securerandom'
require 'set'

N = Integer(ENV.fetch('WL_CLIENTS', '8'))
R = Integer(ENV.fetch('WL_ROUNDS', '12'))
ACCOUNTS = Integer(ENV.fetch('WL_ACCOUNTS', '10'))
TOTAL = Integer(ENV.fetch('WL_TOTAL', '10000'))
BIG = Integer(ENV.fetch('WL_BIG', '10000'))
BULK = Integer(ENV.fetch('WL_BULK', '200'))

SQL = {
  'prev_token' => 'SELECT token FROM drv_tokens WHERE client = $1 AND round = $2',
  'add_token' => 'INSERT INTO drv_tokens (client, round, token) VALUES ($1, $2, $3)',
  'move' => 'UPDATE drv_accounts SET balance = balance + $1 WHERE id = $2 RETURNING balance',
  'balances' => 'SELECT id, balance FROM drv_accounts WHERE id IN ($1, $2) ORDER BY id',
  'total' => 'SELECT sum(balance)::int, pg_backend_pid() FROM drv_accounts',
  'boom' => 'SELECT 10 / (id - $1) FROM generate_series(1, 3) AS id',
  'big' => "SELECT id, repeat('x', id % 97) FROM generate_series(1, $1) AS id ORDER BY id",
  'bulk_check' => "SELECT count(*)::int, string_agg(v, ',' ORDER BY k) FROM drv_bulk WHERE client = $1",
  'final' => 'SELECT (SELECT sum(balance)::int FROM drv_accounts), (SELECT count(*)::int FROM drv_tokens)'
}.freeze

# Counts of answers checked and the mismatches, shared by the client threads.
class Tally
  attr_reader :n, :failures

  def initialize
    @lock = Mutex.new
    @n = { 'txns' => 0, 'ryw_txn' => 0, 'ryw_stmt' => 0, 'sums' => 0, 'rollbacks' => 0, 'large' => 0,
           'bulk' => 0, 'savepoints' => 0, 'moved' => 0, 'prepared' => 0 }
    @failures = []
  end

  def add(key)
    @lock.synchronize { @n[key] += 1 }
  end

  def fail(text)
    @lock.synchronize { @failures << text }
  end

  def check(key, cond, what, expected, got)
    cond ? add(key) : fail("#{what}: expected #{expected.inspect}, got #{got.inspect}")
    cond
  end
end

T = Tally.new

# One client: its connection, its statements prepared once, typed rows back.
class Db
  def initialize
    @c = PG.connect(connect_timeout: 60)   # PG* from the environment
    @c.type_map_for_results = PG::BasicTypeMapForResults.new(@c)
    SQL.each { |name, sql| @c.prepare("drv_#{name}", sql) }
  end

  def exec(sql)
    @c.exec(sql)
  end

  # rows through COPY FROM STDIN
  def copy_in(sql, rows)
    @c.copy_data(sql) { rows.each { |r| @c.put_copy_data(r.join("\t") + "\n") } }
  end

  def q(name, *args)
    T.add('prepared')
    @c.exec_prepared("drv_#{name}", args.map(&:to_s)).values
  end

  # the SQLSTATE the block fails with, 'none' when it succeeds
  def fails
    yield
    'none'
  rescue PG::Error => e
    e.result ? e.result.error_field(PG::PG_DIAG_SQLSTATE) : e.message
  end

  def close
    @c.close
  end
end

# the transfer of client i in round r: [debited id, credited id, amount]
def plan(i, r)
  a = (i * 7 + r * 3) % ACCOUNTS
  b = (a + 1 + (i + r) % (ACCOUNTS - 1)) % ACCOUNTS
  [a, b, 1 + (i * 13 + r * 5) % 50]
end

def transfer_round(db, i, r, tokens, pids)
  tag = "client #{i} round #{r}"
  db.exec('BEGIN')
  if r.positive?
    got = db.q('prev_token', i, r - 1)
    T.check('ryw_txn', got == [[tokens[r - 1]]], "#{tag}: previous transaction's token", tokens[r - 1], got)
  end
  tokens << "ruby-pg:#{i}:#{r}:#{SecureRandom.hex(8)}"
  db.q('add_token', i, r, tokens[r])
  got = db.q('prev_token', i, r)
  T.check('ryw_stmt', got == [[tokens[r]]], "#{tag}: token written by this transaction", tokens[r], got)
  failed_savepoint(db, i, r, tokens[r]) if r % 4 == 1
  a, b, amt = plan(i, r)
  after = {}
  [[a, -amt], [b, amt]].sort.each do |acct, delta|
    rows = db.q('move', delta, acct)
    after[acct] = rows.length == 1 ? rows[0][0] : rows
  end
  got = db.q('balances', a, b)
  want = after.sort
  T.check('ryw_stmt', got == want, "#{tag}: balances after the updates", want, got)
  got = db.q('total')
  T.check('sums', got.length == 1 && got[0][0] == TOTAL, "#{tag}: total inside the transaction", TOTAL, got)
  pids << got[0][1] unless got.empty?
  db.exec('COMMIT')
  T.add('txns')
end

# A transaction that writes, fails, is rolled back; its writes must be gone.
# Most rounds fail with a division by zero after a first row; round 6 in the
# middle of a COPY (a duplicate key).
def failed_round(db, i, r)
  db.exec('BEGIN')
  db.q('add_token', i, 1000 + r, 'doomed')
  if r % 8 == 6
    want = '23505'
    rows = [[100 + i, r, 'first'], [100 + i, r, 'duplicate'], [100 + i, r + 1, 'never']]
    code = db.fails { db.copy_in('COPY drv_bulk (client, k, v) FROM STDIN', rows) }
  else
    want = '22012'
    code = db.fails { db.q('boom', 2) }
  end
  db.exec('ROLLBACK')
  got = db.q('prev_token', i, 1000 + r) + db.q('bulk_check', 100 + i)
  T.check('rollbacks', code == want && got == [[0, nil]],
          "client #{i} round #{r}: error #{want}, then ROLLBACK undid the writes", [want, [[0, nil]]], [code, got])
end

# Inside a transaction: a savepoint whose write fails and is rolled back to;
# the transaction's earlier write stays, the savepoint's is gone.
def failed_savepoint(db, i, r, token)
  db.exec('SAVEPOINT drv_sp')
  code = db.fails do
    db.q('add_token', i, 2000 + r, 'doomed')
    db.q('boom', 2)
  end
  db.exec('ROLLBACK TO SAVEPOINT drv_sp')
  got = db.q('prev_token', i, r) + db.q('prev_token', i, 2000 + r)
  T.check('savepoints', code == '22012' && got == [[token]],
          "client #{i} round #{r}: error 22012 in a savepoint, rolled back to it", ['22012', [[token]]], [code, got])
end

def big_result(db, i)
  db.exec('BEGIN')
  rows = db.q('big', BIG)
  db.exec('COMMIT')
  bad = rows.each_with_index.reject { |row, k| row == [k + 1, 'x' * ((k + 1) % 97)] }.map(&:first)
  T.check('large', rows.length == BIG && bad.empty?, "client #{i}: #{BIG}-row result", BIG, [rows.length, bad[0, 2]])
end

def bulk_load(db, i)
  rows = Array.new(BULK) { |k| [i, k, "b#{i}-#{k}"] }
  db.exec('BEGIN')
  db.copy_in('COPY drv_bulk (client, k, v) FROM STDIN', rows)
  got = db.q('bulk_check', i)
  db.exec('COMMIT')
  want = [[BULK, rows.map(&:last).join(',')]]
  T.check('bulk', got == want, "client #{i}: #{BULK} rows loaded by COPY", BULK, got.length == 1 ? got[0][0] : got)
end

def client(db, i)
  tokens = []
  pids = Set.new
  R.times do |r|
    failed_round(db, i, r) if r % 4 == 2
    transfer_round(db, i, r, tokens, pids)
    big_result(db, i) if r == 1
    bulk_load(db, i) if r == 3
  end
  T.add('moved') if pids.size > 1
rescue StandardError => e
  T.fail("client #{i} stopped: #{e.class}: #{e.message.strip}")
ensure
  db.close
end

final = [[nil, nil]]
begin
  dbs = Array.new(N) { Db.new }
  dbs.each_with_index.map { |db, i| Thread.new { client(db, i) } }.each(&:join)
  db = Db.new
  final = db.q('final')
  db.close
rescue StandardError => e
  T.fail("final check: #{e.class}: #{e.message.strip}")
end
T.failures.each { |f| puts "FAIL #{f.gsub("\n", ' | ')}" }
fields = { 'driver' => 'ruby-pg', 'clients' => N, 'rounds' => R }.merge(T.n)
fields.merge!('final_sum' => final[0][0], 'final_tokens' => final[0][1], 'failures' => T.failures.length)
puts "SUMMARY #{fields.map { |k, v| "#{k}=#{v}" }.join(' ')}"
$stdout.flush
