"""``sagas.secrets``: URLs are shown with their password masked, whatever form it takes."""

from __future__ import annotations

import pytest

from sagas.secrets import mask_url, mask_urls


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://sagas:s3cret@127.0.0.1/test", "postgresql://sagas:***@127.0.0.1/test"),
        (
            "postgresql+psycopg://sagas:s3cret@db:5432/sagas?options=-csearch_path%3Dx",
            "postgresql+psycopg://sagas:***@db:5432/sagas?options=-csearch_path%3Dx",
        ),
        # Unencoded "@", "/", "?" and "#" in a password: none of it is shown.
        ("postgresql://sagas:s3@cr/et?#x@db/sagas", "postgresql://sagas:***@db/sagas"),
        ("postgresql://:s3cret@db/sagas", "postgresql://:***@db/sagas"),
        # libpq also reads the password from the query string.
        (
            "postgresql://db/sagas?sslmode=require&password=s3cret",
            "postgresql://db/sagas?sslmode=require&password=***",
        ),
        ("amqp://guest:s3cret@localhost:5672/%2f", "amqp://guest:***@localhost:5672/%2f"),
        ("redis://:s3cret@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("nats://s3cret@localhost:4222", "nats://***@localhost:4222"),
        # Nothing secret: unchanged.
        ("postgresql://sagas@db/sagas", "postgresql://sagas@db/sagas"),
        ("sqlite:////var/lib/a@b:c.db", "sqlite:////var/lib/a@b:c.db"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sagas.db", "sagas.db"),
        ("", ""),
    ],
)
def test_a_url_is_shown_with_its_password_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert mask_url(shown) == shown  # masking twice changes nothing


def test_every_url_quoted_in_a_message_is_masked() -> None:
    message = (
        "cannot open 'postgresql://sagas:s3cret@db/sagas': refused "
        '(fallback amqp://guest:hunter2@mq/) and "redis://:pw@cache/0"'
    )
    assert mask_urls(message) == (
        "cannot open 'postgresql://sagas:***@db/sagas': refused "
        '(fallback amqp://guest:***@mq/) and "redis://:***@cache/0"'
    )
    assert mask_urls("no URL here: user:pass@host") == "no URL here: user:pass@host"


def test_a_configuration_never_shows_its_database_password() -> None:
    from sagas.config import EngineConfig

    config = EngineConfig(database_url="postgresql://sagas:s3cret@127.0.0.1/test")

    assert "s3cret" not in repr(config)
    assert "s3cret" not in str(config)
