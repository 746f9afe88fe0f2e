"""Property tests: whatever arrives, the exposition parser gives samples and counted skips,
and the batch decoder gives records or the documented errors, never another exception."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.dcgm import GAUGES, parse_exposition
from collectors.records import RecordError, gpu_sample_from_mapping, storage_sample_from_mapping
from finops.telemetry.ingest import BatchError, decode_body, iter_batch

NOW = datetime(2026, 12, 1, tzinfo=UTC)
names = st.sampled_from([*GAUGES, "DCGM_FI_DEV_FB_FREE", "other_metric", "", "{", "#"])
label_values = st.text(max_size=12)
lines = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda n, uuid, extra, value, stamp: f'{n}{{UUID="{uuid}",gpu="0"{extra}}} {value}{stamp}',
        names, label_values, st.sampled_from(["", ',x="y"', ",broken", ',a="\\"q\\""']),
        st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str), st.text(max_size=6)),
        st.sampled_from(["", " 1795428000000", " notatime", " -1", " 99999999999999999999"]),
    ),
)  # fmt: skip


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(lines, max_size=20))
def test_exposition_parser_never_raises(text_lines):
    result = parse_exposition("\n".join(text_lines), scraped_at=NOW)
    assert result.skipped_lines >= 0
    for sample in result.samples:
        assert sample.gpu_uuid and sample.ts.tzinfo is not None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)  # fmt: skip
fields = st.sampled_from(["gpu_uuid", "ts", "sm_util_pct", "mem_used_bytes", "mem_total_bytes",
                          "power_w", "sm_clock_mhz", "energy_mj", "hostname", "device", "util_pct",
                          "kind", "capacity_bytes", "zzz"])  # fmt: skip
times = st.one_of(
    st.datetimes(timezones=st.sampled_from([UTC, None])).map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "Z", ""]),
)
records = st.dictionaries(fields, st.one_of(json_values, times), max_size=8)


@settings(max_examples=400, deadline=None)
@given(records)
def test_sample_validation_raises_only_record_errors(data):
    for parse in (gpu_sample_from_mapping, storage_sample_from_mapping):
        error = None
        try:
            parse(data, now=NOW)
        except RecordError as exc:
            error = exc
        assert error is None or (error.field and error.message)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(records.map(json.dumps), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))),
                max_size=6), st.booleans())  # fmt: skip
def test_batch_decoder_gives_lines_or_a_batch_error(body_lines, as_array):
    body = ("[" + ",".join(body_lines) + "]") if as_array else "\n".join(body_lines)
    error, items = None, []
    try:
        items = list(iter_batch(decode_body(body.encode("utf-8", "surrogatepass"))))
    except BatchError as exc:
        error = exc
    assert error is None or 400 <= error.status < 500
    for number, item in items:
        assert number >= 1
        if not isinstance(item, RecordError):
            json.dumps(item)  # a parsed JSON value


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_gzip_decoder_gives_bytes_or_a_batch_error(body):
    error = None
    try:
        decode_body(body, content_encoding="gzip")
    except BatchError as exc:
        error = exc
    assert error is None or error.status in (400, 413)
