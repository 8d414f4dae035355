from pathlib import Path

import pytest

from ticketstream.settings import Settings, SettingsError, load_settings


def test_defaults_are_sensible():
    s = load_settings(environ={})
    assert s.partitions == 12
    assert s.replication_factor is None  # min(3, brokers) when topics are created
    assert s.bootstrap_servers is None
    assert s.topic("tickets.inbound") == "tickets.inbound"


def test_env_overrides_file_and_command_line_overrides_env(tmp_path: Path):
    cfg = tmp_path / "ts.toml"
    cfg.write_text('[ticketstream]\npartitions = 6\ntopic_prefix = "file."\n')
    s = load_settings(cfg, environ={"TICKETSTREAM_PARTITIONS": "8"})
    assert (s.partitions, s.topic_prefix) == (8, "file.")
    s = load_settings(cfg, environ={"TICKETSTREAM_PARTITIONS": "8"}, partitions=3)
    assert s.partitions == 3


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TICKETSTREAM_PARTITIONS": "zero"}, "partitions"),
        ({"TICKETSTREAM_PARTITIONS": "0"}, "partitions"),
        ({"TICKETSTREAM_BOOTSTRAP_SERVERS": "localhost"}, "bootstrap_servers"),
        ({"TICKETSTREAM_TOPIC_PREFIX": "bad prefix/"}, "topic_prefix"),
        ({"TICKETSTREAM_SECURITY_PROTOCOL": "TLS"}, "security_protocol"),
        ({"TICKETSTREAM_WEB_PORT": "70000"}, "web_port"),
        ({"TICKETSTREAM_PRODUCER_LINGER_MS": "-1"}, "producer_linger_ms"),
    ],
)
def test_wrong_values_fail_with_the_setting_named(env, named):
    with pytest.raises(SettingsError) as err:
        load_settings(environ=env)
    assert named in str(err.value)
    assert "TICKETSTREAM_" in str(err.value)  # says where the value came from


def test_unknown_file_setting_is_named(tmp_path: Path):
    cfg = tmp_path / "ts.toml"
    cfg.write_text("partitons = 3\n")
    with pytest.raises(SettingsError, match="unknown setting 'partitons'"):
        load_settings(cfg, environ={})


def test_missing_or_broken_config_file(tmp_path: Path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("partitions = [")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(bad, environ={})


def test_sasl_options_in_client_spelling():
    s = Settings(
        bootstrap_servers="a:9092,b:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="u",
        sasl_password="s3cr3t-pw",
    )
    opts = s.kafka_client_options()
    assert opts["sasl_plain_password"] == "s3cr3t-pw"
    assert "s3cr3t-pw" not in repr(s)  # the secret never prints


def test_worker_producer_uses_the_linger_setting(tmp_path: Path):
    from ticketstream.workers.app import create_app

    settings = load_settings(
        environ={"TICKETSTREAM_PRODUCER_LINGER_MS": "40"}, bootstrap_servers="127.0.0.1:9", data_dir=tmp_path
    )
    assert create_app(settings).conf.producer_linger == pytest.approx(0.040)
    assert load_settings(environ={}).producer_linger_ms == 100


SASL = {
    "TICKETSTREAM_SECURITY_PROTOCOL": "SASL_SSL",
    "TICKETSTREAM_SASL_USERNAME": "ts-user",
    "TICKETSTREAM_SASL_PASSWORD": "s3cr3t-pw",
}


@pytest.mark.parametrize(
    ("drop", "add", "named", "says"),
    [
        ("TICKETSTREAM_SASL_USERNAME", {}, "sasl_username", "needs a SASL user"),
        ("TICKETSTREAM_SASL_PASSWORD", {}, "sasl_password", "needs a SASL password"),
        (None, {"TICKETSTREAM_SASL_PASSWORD": ""}, "sasl_password", "needs a SASL password"),
        (None, {"TICKETSTREAM_SECURITY_PROTOCOL": "SSL"}, "sasl_mechanism|sasl_username", "does not use SASL"),
        (None, {"TICKETSTREAM_SASL_MECHANISM": "GSSAPI"}, "sasl_mechanism", "SCRAM-SHA-512"),
    ],
)
def test_security_settings_that_do_not_fit_are_named(drop, add, named, says):
    env = {k: v for k, v in SASL.items() if k != drop} | add
    with pytest.raises(SettingsError, match=rf"setting '({named})'.*{says}") as err:
        load_settings(environ=env)
    assert "s3cr3t-pw" not in str(err.value)


def test_a_missing_or_broken_tls_file_is_named_when_a_client_is_made(tmp_path: Path):
    settings = load_settings(environ=SASL | {"TICKETSTREAM_SSL_CAFILE": str(tmp_path / "ca.pem")})
    with pytest.raises(SettingsError, match=f"setting 'ssl_cafile': {tmp_path / 'ca.pem'} does not exist"):
        settings.kafka_client_options()
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(SettingsError, match="setting 'ssl_cafile': cannot read CA certificates"):
        settings.kafka_client_options()


def test_tls_files_need_a_tls_protocol_and_a_key_needs_its_certificate(tmp_path: Path):
    from ticketstream.workers.tls import ensure_ca_and_server

    ca = ensure_ca_and_server(tmp_path).ca
    with pytest.raises(SettingsError, match=r"setting 'ssl_cafile' \(from env TICKETSTREAM_SSL_CAFILE\).*PLAINTEXT"):
        load_settings(environ={"TICKETSTREAM_SSL_CAFILE": str(ca)})
    with pytest.raises(SettingsError, match="'ssl_keyfile'.*without ssl_certfile"):
        load_settings(environ={"TICKETSTREAM_SECURITY_PROTOCOL": "SSL", "TICKETSTREAM_SSL_KEYFILE": str(ca)})
    # An empty value is unset (container specs write `NAME=`), not the current directory.
    assert load_settings(environ={"TICKETSTREAM_SSL_CAFILE": "", "TICKETSTREAM_SASL_USERNAME": ""}).ssl_cafile is None


def test_one_set_of_client_options_serves_kafka_python_and_the_faust_worker(tmp_path: Path):
    import ssl

    from ticketstream.workers.app import create_app
    from ticketstream.workers.tls import ensure_ca_and_server

    ca = ensure_ca_and_server(tmp_path / "tls").ca
    settings = load_settings(
        environ=SASL | {"TICKETSTREAM_SSL_CAFILE": str(ca), "TICKETSTREAM_SSL_CHECK_HOSTNAME": "false"},
        bootstrap_servers="127.0.0.1:9",
        data_dir=tmp_path,
    )
    opts = settings.kafka_client_options()
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"  # the default with SASL
    context = opts["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is False
    assert context.get_ca_certs()[0]["subject"][-1][0][1] == "ticketstream development CA"
    credentials = create_app(settings).conf.broker_credentials
    assert (credentials.protocol.value, credentials.mechanism.value) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (credentials.username, credentials.password) == ("ts-user", "s3cr3t-pw")
    assert credentials.ssl_context.check_hostname is False
    for shown in (repr(settings), settings.model_dump_json(), repr(credentials)):
        assert "s3cr3t-pw" not in shown
    assert settings.as_env({})["TICKETSTREAM_SASL_PASSWORD"] == "s3cr3t-pw"  # only for child processes
    assert load_settings(environ=settings.as_env({})) == settings
