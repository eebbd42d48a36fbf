# t/004_cache_logical_replication.pl: the result cache on a logical
# replication subscriber.  The apply worker fires no statement triggers, so
# perfopt must notice replicated writes itself: a subscriber never serves an
# answer older than the rows it has.  This needs two clusters, a publisher
# and a subscriber.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $preload = qq{
shared_preload_libraries = 'perfopt'
perfopt.slow_query_threshold = -1
};
my $pub = PostgreSQL::Test::Cluster->new('publisher');
$pub->init(allows_streaming => 'logical');
$pub->append_conf('postgresql.conf', $preload);
$pub->start;
my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->append_conf('postgresql.conf', $preload);
$sub->start;

my $items = 'CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)';
$pub->safe_psql('postgres', qq{CREATE EXTENSION perfopt; $items;
INSERT INTO items SELECT g, g * 10 FROM generate_series(1, 1000) g;
SELECT perfopt.cache_table('items');
CREATE PUBLICATION items_pub FOR TABLE items;});
$sub->safe_psql('postgres', "CREATE EXTENSION perfopt; $items;");
my $pub_connstr = $pub->connstr . ' dbname=postgres';
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION items_sub CONNECTION '$pub_connstr' PUBLICATION items_pub");
$sub->wait_for_subscription_sync($pub, 'items_sub');
is($sub->safe_psql('postgres', 'SELECT count(*) FROM items'), '1000',
	'the subscriber has the rows');

$sub->safe_psql('postgres', "SELECT perfopt.cache_table('items')");
# The sum and how this session's read of it went, as "sum outcome".
sub sum_and_outcome
{
	return join ' ', split /\n/, $sub->safe_psql('postgres',
		'SELECT sum(v) FROM items; SELECT perfopt.cache_last_outcome();');
}
sum_and_outcome();
is(sum_and_outcome(), '5005000 hit', 'the subscriber caches');

$pub->safe_psql('postgres', 'UPDATE items SET v = v + 1 WHERE id <= 10');
$pub->wait_for_catchup('items_sub');
# random() keeps this read out of the cache: it sees the rows themselves.
is( $sub->safe_psql('postgres',
		'SELECT sum(v) FROM items WHERE id <= 10 AND random() >= 0'),
	'560', 'replicated write arrived (uncached read)');
is((split / /, sum_and_outcome())[0], '5005010',
	'the cached answer reflects the replicated write');
is(sum_and_outcome(), '5005010 hit', 'and is cached again');

$sub->safe_psql('postgres', 'DROP SUBSCRIPTION items_sub');
$sub->stop;
$pub->stop;
done_testing();
