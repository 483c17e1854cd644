"""One topic layout: the kiosk publishes where central subscribes and reads, and the reverse."""

from __future__ import annotations

import pytest

from central.contract import ContractError, parse_topic, session_topic, subscriptions
from edge.publishing.topics import Topics
from gaitcontract import topics
from gaitcontract.topic_guard import is_production


def test_the_kiosk_publishes_where_central_reads():
    kiosk = Topics.for_kiosk(topics.DEFAULT_PREFIX, "school-a", "kiosk-1")
    for kind in topics.PUBLISHED:
        assert parse_topic(getattr(kiosk, kind)) == topics.Topic("school-a", "kiosk-1", kind)
    assert kiosk.session == session_topic("school-a", "kiosk-1")
    assert subscriptions() == [f"{topics.DEFAULT_PREFIX}/+/+/{k}" for k in topics.PUBLISHED]


def test_the_default_prefix_is_the_production_one():
    assert is_production(topics.DEFAULT_PREFIX)


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("other/v1/school-a/kiosk-1/result", "is not under"),
        ("gaitmil/v1/school-a/result", "is not gaitmil/v1/<site>/<kiosk>/{result,status,health}"),
        ("gaitmil/v1/school-a/kiosk-1/session", "is not gaitmil/v1/<site>/<kiosk>"),
        ("gaitmil/v1/sch ool/kiosk-1/result", "outside [A-Za-z0-9_.-]"),
    ],
)
def test_a_topic_outside_the_layout_is_refused_with_why(topic, reason):
    with pytest.raises(topics.TopicError) as raised:
        topics.parse_topic(topic)
    assert reason in str(raised.value)
    with pytest.raises(ContractError) as wrapped:  # central keeps its own error type
        parse_topic(topic)
    assert str(wrapped.value) == str(raised.value)


def test_an_id_or_token_with_a_trailing_newline_is_refused():
    # `$` matches before a final newline: the patterns are used with fullmatch everywhere
    with pytest.raises(topics.TopicError):
        topics.parse_topic("gaitmil/v1/school-a\n/kiosk-1/result")
    from central.contract import session_topic
    from central.errors import CentralError
    from central.sites import add_site

    with pytest.raises(ContractError):
        session_topic("school-a\n", "kiosk-1")
    with pytest.raises(CentralError, match="site id"):
        add_site(None, "school-a\n")  # refused before the database is asked
