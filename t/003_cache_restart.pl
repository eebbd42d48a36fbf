# t/003_cache_restart.pl: the result cache over a clean restart.  What the
# user declared (rules, and the invalidation trigger they install) is kept in
# the catalog and persists; cached answers live in shared memory only, so the
# cache starts empty and fills again.  A restart needs a cluster of its own.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cache');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'perfopt'
perfopt.slow_query_threshold = -1
});
$node->start;

sub query { return $node->safe_psql('postgres', shift); }

query(q{CREATE EXTENSION perfopt;
CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO items SELECT g, g * 10 FROM generate_series(1, 1000) g;
SELECT perfopt.cache_table('items');});

# Two reads of one statement in one session, each followed by its outcome
# (the outcome is per session); the answers (70) are left out.
my $read_twice = q{SELECT v FROM items WHERE id = 7;
SELECT perfopt.cache_last_outcome();
SELECT v FROM items WHERE id = 7;
SELECT perfopt.cache_last_outcome();};
sub outcomes { return join ' ', grep { $_ ne '70' } split /\n/, query($read_twice); }

is(outcomes(), 'miss, stored hit', 'before the restart: a miss stores, the next read hits');
isnt(query('SELECT entries FROM perfopt.cache_totals'), '0',
	'the cache holds entries before the restart');

$node->restart;
is(query('SELECT kind, tbl FROM perfopt.cache_rules'), 'table|items', 'rules survive a restart');
is( query(q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'items'::regclass
	  AND tgname = 'perfopt_cache_invalidate' AND tgenabled = 'A'}),
	'1', 'the trigger survives a restart');
is(query('SELECT entries FROM perfopt.cache_totals'), '0', 'the cache starts empty');
is(outcomes(), 'miss, stored hit', 'first read after restart is a miss, the next a hit');

$node->stop;
done_testing();
