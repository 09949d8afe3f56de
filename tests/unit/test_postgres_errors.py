"""The FATAL/PANIC lines pgha quotes when PostgreSQL would not start."""

from pgha.hosts.facts.postgres_errors import errors_suffix, parse_errors, server_log
from pgha.render.postgres import local_parameters
from tests.specs import reference_spec

JOURNAL = """\
2026-12-03 18:01:01.001 UTC [799] FATAL:  could not access file "pgha_test_missing": No such file or directory
2026-12-03 18:01:01.500 UTC [801] FATAL:  could not start WAL streaming: ERROR:  replication slot "db3" does not exist
2026-12-03 18:01:02.123 UTC [811] FATAL:  could not access file "pgha_test_missing": No such file or directory
2026-12-03 18:01:12.456 UTC [822] FATAL:  could not access file "pgha_test_missing": No such file or directory
2026-12-03 18:01:12.456 UTC [822] FATAL:  could not access file "pgha_test_missing": No such file or directory

"""  # noqa: E501


def test_each_message_once_without_its_prefix_newest_last() -> None:
    assert parse_errors(JOURNAL) == [
        'FATAL: could not start WAL streaming: ERROR: replication slot "db3" does not exist',
        'FATAL: could not access file "pgha_test_missing": No such file or directory',
    ]


def test_long_lines_are_cut_and_other_lines_ignored() -> None:
    assert parse_errors("LOG:  database system is shut down") == []
    assert len(parse_errors("x FATAL: " + "x" * 1000)[0]) == 240


def test_suffix_joins_lines_and_is_empty_without_any() -> None:
    assert errors_suffix([]) == ""
    assert errors_suffix(["FATAL: a", "PANIC: b"]) == " (its log: FATAL: a | PANIC: b)"


def test_server_log_is_where_pgha_points_postgres() -> None:
    spec = reference_spec()
    params = local_parameters(spec)
    expected = f"{params['log_directory']}/{params['log_filename']}"
    assert server_log(spec.postgres.version, spec.cluster) == expected
