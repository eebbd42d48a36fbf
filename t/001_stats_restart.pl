# t/001_stats_restart.pl: statistics and slow queries over a server's life.
# A clean restart keeps them (saved at shutdown, loaded at start), a crash
# of a backend drops them and shared memory is rebuilt cleanly, and
# perfopt.save = off keeps nothing.  Stopping, killing and starting a server
# is what the regress and isolation suites' one instance cannot do, hence a
# cluster of its own here.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('stats');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'perfopt'
perfopt.slow_query_threshold = 0
restart_after_crash = on
});
$node->start;

sub query { return $node->safe_psql('postgres', shift); }

my $stats_of_r = q{SELECT calls || ' ' || round(p99_exec_time::numeric, 6)
  FROM perfopt.query_stats WHERE query = 'SELECT count(*) FROM r WHERE a > $1'};
my $rows_of_r = q{SELECT count(*) FROM perfopt.query_stats
  WHERE query LIKE '%FROM r WHERE%'};

query('CREATE EXTENSION perfopt');
query('CREATE TABLE r(a int)');
query('INSERT INTO r SELECT generate_series(1, 100)');
query("SELECT count(*) FROM r WHERE a > $_") for 1 .. 3;
my $before = query($stats_of_r);
is((split / /, $before)[0], '3', 'three executions counted');
is( query(q{SELECT count(*) FROM perfopt.slow_queries
	  WHERE query LIKE 'SELECT count(*) FROM r WHERE a >%'}),
	'3', 'three slow captures');

# --- clean restart ------------------------------------------------------------
$node->restart;
is(query($stats_of_r), $before,
	'statistics (calls and histogram) survive a clean restart');
is( query(q{SELECT count(*) FROM perfopt.slow_queries
	  WHERE query LIKE 'SELECT count(*) FROM r WHERE a >%' AND plan LIKE 'Aggregate%'}),
	'3', 'slow queries with plans survive a clean restart');
ok(!-e $node->data_dir . '/pg_stat/perfopt.stat',
	'the saved file is consumed at start');

# --- crash: kill -9 of a backend; the postmaster reinitialises shared memory --
my $log_offset = -s $node->logfile;
my $victim = $node->background_psql('postgres', on_error_stop => 0);
my $victim_pid = $victim->query_safe('SELECT pg_backend_pid()');
$victim->query_until(qr/sleeping/, qq{\\echo sleeping
SELECT pg_sleep($PostgreSQL::Test::Utils::timeout_default);
});
$node->poll_query_until('postgres', qq{SELECT state = 'active'
  FROM pg_stat_activity WHERE pid = $victim_pid AND query LIKE 'SELECT pg_sleep(%'})
  or die 'the backend to kill never started its statement';
kill 'KILL', $victim_pid;
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
$node->poll_query_until('postgres', 'SELECT 1', '1')
  or die 'the server did not come back after the crash';
# psql left when its connection was cut: there is no one to say \q to.
eval { $victim->quit };

is(query('SELECT 1'), '1', 'the server is back after a crash');
is(query($rows_of_r), '0', 'a crash restart starts from empty statistics');
query('SELECT count(*) FROM r WHERE a > 7');
is( query(q{SELECT calls FROM perfopt.query_stats
	  WHERE query = 'SELECT count(*) FROM r WHERE a > $1'}),
	'1', 'statistics work again after the crash');
like(slurp_file($node->logfile, $log_offset), qr/terminated by signal 9/,
	'the crash was a real one');

# --- saving can be turned off -------------------------------------------------
query('ALTER SYSTEM SET perfopt.save = off');
query('SELECT pg_reload_conf()');
$node->restart;
is(query($rows_of_r), '0', 'perfopt.save = off keeps nothing over a restart');

$node->stop;
done_testing();
