"""S3's timestamps parsed without dateutil: botocore parses every response's
Last-Modified with dateutil's general parser (a tenth of a HEAD's CPU in our client),
though S3 only ever sends two fixed formats. Those two are parsed directly; anything
else goes to botocore's own parser, so the values are the same datetimes."""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.utils import parse_timestamp as botocore_parse
from dateutil.tz import tzutc

_UTC = tzutc()  # botocore's tzinfo for these values


def parse_timestamp(value: Any) -> dt.datetime:
    if isinstance(value, str):
        try:
            if value.endswith("GMT"):  # RFC 7231 headers: "Wed, 21 Oct 2015 07:28:00 GMT"
                parsed = parsedate_to_datetime(value)
            elif value.endswith("Z"):  # ISO 8601 bodies: "2015-10-21T07:28:00.000Z"
                parsed = dt.datetime.fromisoformat(value)
            else:
                parsed = None
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None and parsed.utcoffset() == dt.timedelta(0):
            return parsed.replace(tzinfo=_UTC)
    return botocore_parse(value)
