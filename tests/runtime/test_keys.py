"""Key files (PEM, 0600, passphrase-protected) and the key providers."""

from __future__ import annotations

import base64
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

import edgeseal
from edgeseal.runtime import BytesKey, ConfigError, EnvKey, FileKey, KeyProvider, RawKey
from edgeseal.runtime.keys import (
    fingerprint,
    load_private_key,
    raw_key_text,
    resolve_secret,
    write_private_key,
    write_secret_file,
)


def test_private_keys_are_written_0600_and_never_overwritten(tmp_path):
    key = edgeseal.generate_device_key()
    path = tmp_path / "device.pem"
    write_private_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ConfigError, match="already exists"):
        write_private_key(path, key)
    write_private_key(path, key, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_passphrase_protected_pem_round_trip(tmp_path):
    key = edgeseal.generate_publisher_key()
    path = tmp_path / "publisher.pem"
    write_private_key(path, key, "pw")
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert fingerprint(load_private_key(path, "pw")) == fingerprint(key)
    with pytest.raises(ConfigError, match="passphrase-protected; give its passphrase"):
        load_private_key(path)
    with pytest.raises(ConfigError, match="passphrase is wrong"):
        load_private_key(path, "nope")


def test_providers_share_one_interface(tmp_path, monkeypatch, onnx_model, publisher, x16):
    device = edgeseal.generate_device_key()
    raw = RawKey.generate()
    pem = tmp_path / "device.pem"
    write_private_key(pem, device, "pem-pass")
    raw_file = tmp_path / "raw.key"
    write_secret_file(raw_file, raw_key_text(raw))
    monkeypatch.setenv("EDGESEAL_TEST_KEY", base64.b64encode(raw.key).decode().join(["base64:", ""]))
    providers = [FileKey(pem, "pem-pass"), FileKey(raw_file), EnvKey("EDGESEAL_TEST_KEY"), BytesKey(raw.key)]
    assert all(isinstance(p, KeyProvider) for p in providers)
    package = edgeseal.seal(onnx_model, publisher=publisher, devices=[device], raw_keys=[raw])
    outs = [edgeseal.load(package, key=p, trusted=[publisher]).run(x16)["probs"] for p in providers]
    assert all((o == outs[0]).all() for o in outs)
    assert isinstance(resolve_secret(FileKey(pem, "pem-pass")), X25519PrivateKey)
    for p in providers:
        assert "pem-pass" not in repr(p) and raw.key.hex() not in repr(p)


def test_provider_errors_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGESEAL_MISSING", raising=False)
    with pytest.raises(ConfigError, match="EDGESEAL_MISSING is not set"):
        EnvKey("EDGESEAL_MISSING").load()
    with pytest.raises(ConfigError, match="cannot read key file"):
        FileKey(tmp_path / "absent.pem").load()
    publisher_pem = tmp_path / "publisher.pem"
    write_private_key(publisher_pem, edgeseal.generate_publisher_key())
    with pytest.raises(ConfigError, match="publisher \\(Ed25519\\) key; packages open with a device key"):
        FileKey(publisher_pem).load()
    with pytest.raises(ConfigError, match="exactly 32 bytes"):
        RawKey(b"short")
