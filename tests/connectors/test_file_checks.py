"""``check`` of local, FTP, FTPS and SFTP connections against real servers, and the diagnosis of
each failure: unreachable, auth_refused, not_found, tls, host_key."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from tessera.config.models import ConnectionConfig, SourceConfig
from tessera.connectors import check_connection
from tessera.errors import ConnectionFailed

_CONN = TypeAdapter(ConnectionConfig)


def conn_of(settings: dict):
    return _CONN.validate_python({"name": "inbox", **settings})


def source(pattern: str, name: str = "crm") -> SourceConfig:
    return SourceConfig(name=name, connection="inbox", pattern=pattern, record_keys=["id"])


def failure(settings: dict, sources=()) -> ConnectionFailed:
    with pytest.raises(ConnectionFailed) as err:
        check_connection(conn_of(settings), sources)
    return err.value


def test_check_counts_the_files_of_each_source(any_folder):
    any_folder.write("contacts_1.csv", "id\n1\n")
    any_folder.write("contacts_2.csv", "id\n2\n")
    any_folder.write("orders.json", "[]")
    lines = check_connection(conn_of(any_folder.connection()),
                             [source("contacts_*.csv"), source("stores_*.csv", "stores")])
    text = "\n".join(lines)
    assert "source 'crm': 2 file(s) match 'contacts_*.csv'" in text
    assert "source 'stores': no file matches 'stores_*.csv' yet" in text


def test_wrong_password_is_auth_refused_and_never_printed(remote_folder):
    err = failure(remote_folder.connection(password="wrong-Pa55word"))
    assert err.reason == "auth_refused"
    assert "user 'tessera'" in str(err) and "password" in str(err)
    assert "wrong-Pa55word" not in str(err)
    assert remote_folder.server.password not in str(err)


def test_closed_port_is_unreachable_with_host_and_port(remote_folder, closed_port):
    err = failure(remote_folder.connection(port=closed_port, timeout=5))
    assert err.reason == "unreachable"
    assert f"127.0.0.1:{closed_port}" in str(err)
    assert "connection refused" in str(err)


def test_unknown_host_is_unreachable(remote_folder):
    err = failure(remote_folder.connection(host="no-such-host.invalid", timeout=5))
    assert err.reason == "unreachable"
    assert "no-such-host.invalid" in str(err)


def test_missing_folder_is_not_found(any_folder):
    settings = any_folder.connection()
    settings["path"] = settings["path"] + "/no_such_folder"
    err = failure(settings, [source("*.csv")])
    assert err.reason == "not_found"
    assert "no_such_folder" in str(err) and "path" in str(err)


def test_ftps_with_an_untrusted_certificate_is_a_tls_failure(ftps_folder):
    err = failure(ftps_folder.connection(ca_file=None))  # self-signed: the system CAs do not trust it
    assert err.reason == "tls"
    assert "not trusted" in str(err) and "ca_file" in str(err) and "verify_certificate" in str(err)


def test_ftps_with_another_ca_file_is_a_tls_failure(ftps_folder, tmp_path):
    from remote_fixtures import make_self_signed_cert  # tests/ is on sys.path (conftest.py)

    other, _ = make_self_signed_cert(tmp_path, "other")
    err = failure(ftps_folder.connection(ca_file=str(other)))
    assert err.reason == "tls"
    assert str(other) in str(err)


def test_ftps_without_verification_connects(ftps_folder):
    lines = check_connection(conn_of(ftps_folder.connection(ca_file=None, verify_certificate=False)))
    assert "NOT verified" in lines[0]


def test_ftps_verified_says_so(ftps_folder):
    assert "certificate verified" in check_connection(conn_of(ftps_folder.connection()))[0]


def test_ftps_to_a_plain_ftp_server_is_a_tls_failure(ftp_folder):
    err = failure(ftp_folder.connection(type="ftps"))
    assert err.reason == "tls"
    assert "type: ftp" in str(err)


def test_ftps_with_a_missing_ca_file_names_it(ftps_folder, tmp_path):
    err = failure(ftps_folder.connection(ca_file=str(tmp_path / "nope.pem")))
    assert err.reason == "config"
    assert "nope.pem" in str(err)


def test_sftp_with_an_unknown_host_key_shows_its_fingerprint(sftp_folder, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    err = failure(sftp_folder.connection(known_hosts=str(known_hosts)))
    assert err.reason == "host_key"
    message = str(err)
    assert "host key is not trusted" in message and str(known_hosts) in message
    assert "SHA256:" in message
    assert sftp_folder.server.host_key_line.strip() in message  # the line to add, once checked
    assert "verify_host_key: false" in message


def test_sftp_with_a_changed_host_key_is_refused(sftp_folder, tmp_path):
    import asyncssh

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sftp_folder.server.port} {other}\n")
    assert failure(sftp_folder.connection(known_hosts=str(known_hosts))).reason == "host_key"


def test_sftp_with_a_missing_known_hosts_file_says_how_to_create_it(sftp_folder, tmp_path):
    err = failure(sftp_folder.connection(known_hosts=str(tmp_path / "missing")))
    assert err.reason == "config"
    assert "ssh-keyscan" in str(err)


def test_sftp_without_host_key_verification_connects(sftp_folder):
    lines = check_connection(conn_of(sftp_folder.connection(known_hosts=None, verify_host_key=False)))
    assert "host key NOT verified" in lines[0]


def test_sftp_logs_in_with_a_key_file_key_text_or_an_encrypted_key(sftp_folder):
    server = sftp_folder.server
    sftp_folder.write("a.csv", "id\n1\n")
    for settings in (
        sftp_folder.connection(password=None, private_key_file=str(server.client_key_file)),
        sftp_folder.connection(password=None, private_key=server.client_key_text),
        sftp_folder.connection(password=None, private_key_file=str(server.encrypted_key_file),
                               passphrase=server.passphrase),
    ):
        lines = check_connection(conn_of(settings), [source("*.csv")])
        assert "source 'crm': 1 file(s) match" in "\n".join(lines)


def test_sftp_key_problems_are_named(sftp_folder, tmp_path):
    server = sftp_folder.server
    err = failure(sftp_folder.connection(password=None, private_key_file=str(server.encrypted_key_file),
                                         passphrase="wrong"))
    assert err.reason == "config" and "passphrase" in str(err)
    err = failure(sftp_folder.connection(password=None, private_key_file=str(server.encrypted_key_file)))
    assert err.reason == "config" and "set the connection's passphrase" in str(err)
    err = failure(sftp_folder.connection(password=None, private_key="not a key"))
    assert err.reason == "config" and "private_key" in str(err)
    err = failure(sftp_folder.connection(password=None, private_key_file=str(tmp_path / "id_missing")))
    assert err.reason == "config" and "id_missing" in str(err)
    import asyncssh

    stranger = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    err = failure(sftp_folder.connection(password=None, private_key=stranger))
    assert err.reason == "auth_refused"


def test_local_folder_check(local_folder):
    local_folder.write("a.csv", "id\n1\n")
    lines = check_connection(conn_of(local_folder.connection()), [source("*.csv")])
    assert lines[0].startswith(f"folder {local_folder.dir} can be listed")


def test_plain_ftp_to_an_ftps_server_says_to_use_ftps(ftps_folder):
    err = failure(ftps_folder.connection(type="ftp", ca_file=None))
    assert err.reason == "tls" and "type: ftps" in str(err)


@pytest.mark.parametrize("kind", ["ftp", "sftp"])
def test_a_server_that_never_answers_is_unreachable(kind, request):
    import socket

    served = request.getfixturevalue(f"{kind}_folder")
    with socket.socket() as silent:  # accepts connections (backlog) but never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        port = silent.getsockname()[1]
        err = failure(served.connection(port=port, timeout=1))
    assert err.reason in ("unreachable", "timeout")
    assert f"127.0.0.1:{port}" in str(err)
