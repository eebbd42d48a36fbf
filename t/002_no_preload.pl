# t/002_no_preload.pl: perfopt installed but not in shared_preload_libraries.
# CREATE EXTENSION still works, and each view refuses with SQLSTATE 55000 and
# a hint naming the setting, instead of failing obscurely.  The other suites
# always preload perfopt, so this needs a cluster configured without it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('bare');
$node->init;
$node->start;

my ($rc, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION perfopt');
is("$rc $out$err", '0 ', 'CREATE EXTENSION works without preloading');

for my $view (qw(query_stats slow_queries stats_info))
{
	($rc, $out, $err) = $node->psql('postgres', "SELECT * FROM perfopt.$view",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like(
		$err,
		qr/ERROR:  55000: perfopt must be loaded via shared_preload_libraries/,
		"$view without preloading: error with SQLSTATE 55000");
	like(
		$err,
		qr/HINT:  Add perfopt to shared_preload_libraries/,
		"$view without preloading: hint names the setting");
}

$node->stop;
done_testing();
