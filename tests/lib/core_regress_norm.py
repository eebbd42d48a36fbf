#!/usr/bin/env python3
"""tests/lib/core_regress_norm.py: result files of PostgreSQL's core
regression suite, with the differences a run with every table cached may
show against plain PostgreSQL's run taken out, each recognised precisely.

    core_regress_norm.py [--cached] [--names FILE] OUTDIR RESULT_FILE...

writes each file, normalised, under its own name into OUTDIR.

Always (both sides, so that what remains compares like with like):
  * what differs between any two instances: query identifiers (they hold
    table OIDs), the directory the suite ran from (in error messages naming
    a library), trailing blanks, the padding psql gives a plan's header;
  * result tables (a header, a dashed rule, rows, "(N rows)") are written
    one cell list a row, without the padding that the widest value decides;
    the rows of a statement without ORDER BY are sorted (SQL gives them in
    no order; the statement is the text echoed before the table, and any
    "order by" in it, even in a subquery or a comment, keeps the order);
  * the rows of a statement reading pg_trigger that does not return the
    triggers' names (counts, tgenabled by table) are not compared: they
    count perfopt's trigger with no way to tell it apart.
With --cached (the run where every table carries perfopt's trigger):
  * the trigger's line in \\d listings, exactly as perfopt creates it, and
    a "Triggers ..." heading left with nothing under it;
  * the notices the suite's event triggers (event_trigger.sql) print for
    the CREATE TRIGGER and ALTER TABLE perfopt runs on a new table, just
    before the one for the CREATE TABLE, and for the trigger's drop;
  * rows of a result table naming one of perfopt's objects (a cell equal
    to a name listed in --names, or any text containing "perfopt"; the
    suite never names it): catalog-wide queries see the extension, lock
    listings the rule table its event trigger reads, EXPLAIN ANALYZE the
    trigger's calls.  The row count is the remaining rows;
  * the "Perfopt Cache: ..." line of EXPLAIN ANALYZE (a rule selects every
    statement, so the line is there).
"""
import os
import re
import sys

RULE = re.compile(r'^-+(\+-+)*$')
FOOTER = re.compile(r'^\((\d+) rows?\)$')
TRIGGER_LINE = re.compile(
    r'^    perfopt_cache_invalidate AFTER INSERT OR DELETE OR UPDATE( OF [^;]+?)? OR TRUNCATE '
    r'ON \S+ FOR EACH STATEMENT EXECUTE FUNCTION perfopt\._cache_invalidate\(\)$')
TRIGGER_HEADING = re.compile(r'^(Triggers|Triggers firing always|Triggers firing on replica only'
                             r'|Disabled user triggers|Disabled internal triggers):$')
PLAN_LINE = re.compile(r'^ Perfopt Cache: [a-z]')
WORK_DIR = re.compile(r'/[^\s\'"]*/perfopt-core[a-z]*\.[A-Za-z0-9]+')
QUERY_ID = re.compile(r'(Query[ -]Identifier.*?)-?[0-9]{3,}')


def statement_before(lines, i):
    """The statement echoed just above line i (the table's header)."""
    text = []
    j = i - 1
    while j >= 0:
        s = lines[j].rstrip()
        if not s or FOOTER.match(s) or (s.endswith(';') and text):
            break
        text.append(s)
        j -= 1
    return '\n'.join(reversed(text))


def cells(line):
    return [c.strip() for c in line.split('|')]


def rows_of(body):
    """Lines of a table body grouped into rows: a cell that goes on to the
    next line ends its line with a '+' marker."""
    rows, cur = [], []
    for line in body:
        cur.append(line)
        if not re.search(r'\+\s*(\||$)', line):
            rows.append(cur)
            cur = []
    if cur:
        rows.append(cur)
    return rows


def names_perfopt(row, names):
    for line in row:
        if 'perfopt' in line:
            return True
        for c in cells(line):
            if c in names:
                return True
    return False


def table_end(lines, i):
    """Index of the "(N rows)" footer of a table whose rule is line i, or
    None when what follows is not a result table."""
    j = i + 1
    while j < len(lines):
        if FOOTER.match(lines[j].rstrip()):
            return j
        if not lines[j].startswith(' '):
            return None
        j += 1
    return None


def normalize(lines, cached, names):
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        end = table_end(lines, i) if RULE.match(line.rstrip()) and out else None
        if end is None:
            out.append(line)
            i += 1
            continue
        header = out[-1]
        statement = statement_before(out, len(out) - 1)
        out.pop()
        rows = rows_of(lines[i + 1:end])
        if cached:
            rows = [r for r in rows if not names_perfopt(r, names)]
            if cells(header) == ['QUERY PLAN']:
                rows = [r for r in rows if not PLAN_LINE.match(r[0])]
        hidden = 'pg_trigger' in statement and 'tgname' not in cells(header)
        rows = [' | '.join(c for l in r for c in cells(l)) for r in rows]
        if 'order by' not in statement.lower():
            rows.sort()
        out.append(' | '.join(cells(header)))
        out.append('--')
        if hidden:
            out.append('(rows of pg_trigger not compared)')
        else:
            out.extend(rows)
            out.append('(%d row%s)' % (len(rows), '' if len(rows) == 1 else 's'))
        i = end + 1
    return out


# The notices the suite's own event triggers (event_trigger.sql) print for
# the trigger perfopt creates on a new table, just before the one for the
# CREATE TABLE itself; and for its drop.
NESTED_DDL = [
    re.compile(r'^(NOTICE:  test_event_trigger: ddl_command_start CREATE TRIGGER\n)?'
               r'NOTICE:  test_event_trigger: ddl_command_end CREATE TRIGGER\n'
               r'(NOTICE:  test_event_trigger: ddl_command_start ALTER TABLE\n)?'
               r'NOTICE:  test_event_trigger: ddl_command_end ALTER TABLE\n'
               r'(?=NOTICE:  test_event_trigger: ddl_command_end (CREATE TABLE|CREATE TABLE AS|SELECT INTO)\n)',
               re.M),
    re.compile(r'^NOTICE:  END: command_tag=CREATE TRIGGER type=trigger '
               r'identity=perfopt_cache_invalidate on (\S+)\n'
               r'NOTICE:  END: command_tag=ALTER TABLE type=table identity=\1\n'
               r'(?=NOTICE:  END: command_tag=(CREATE TABLE|CREATE TABLE AS|SELECT INTO) )', re.M),
    re.compile(r'^NOTICE:  DROP: orig=f normal=f istemp=f type=trigger '
               r'identity=perfopt_cache_invalidate on .*\n', re.M),
]


def drop_nested_ddl(lines):
    text = '\n'.join(lines) + '\n'
    for pattern in NESTED_DDL:
        text = pattern.sub('', text)
    return text.split('\n')[:-1]


def drop_triggers(lines):
    kept = [l for l in lines if not TRIGGER_LINE.match(l.rstrip())]
    out = []
    for k, l in enumerate(kept):
        nxt = kept[k + 1] if k + 1 < len(kept) else ''
        if TRIGGER_HEADING.match(l.rstrip()) and not nxt.startswith('    '):
            continue
        out.append(l)
    return out


def main(argv):
    cached = '--cached' in argv
    if cached:
        argv.remove('--cached')
    names = set()
    if argv[0] == '--names':
        with open(argv[1]) as f:
            names = {n.strip() for n in f if n.strip()}
        argv = argv[2:]
    outdir, files = argv[0], argv[1:]
    for path in files:
        with open(path, errors='replace') as f:
            lines = [l.rstrip('\n') for l in f]
        lines = [QUERY_ID.sub(r'\1N', l) if 'Identifier' in l else l for l in lines]
        lines = [WORK_DIR.sub('@work@', l) for l in lines]
        if cached:
            lines = drop_triggers(drop_nested_ddl(lines))
        with open(os.path.join(outdir, os.path.basename(path)), 'w') as f:
            for l in normalize(lines, cached, names):
                l = l.rstrip()
                if re.match(r'^ *QUERY PLAN$', l):
                    l = 'QUERY PLAN'
                f.write(l + '\n')


if __name__ == '__main__':
    main(sys.argv[1:])
