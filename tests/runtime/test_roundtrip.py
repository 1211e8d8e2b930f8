"""Seal -> load -> run gives exactly what the plain model gives on the same backend."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

import edgeseal
from edgeseal.runtime import (
    ConfigError,
    InvalidInput,
    InvalidPackage,
    NoMatchingKey,
    PackageExpired,
    RollbackRejected,
    UnsignedPackage,
    UntrustedPublisher,
)


def test_onnx_outputs_identical_to_plain_onnxruntime(onnx_model, sealed_onnx, publisher, device, x16):
    import onnxruntime as ort

    plain = ort.InferenceSession(onnx_model, providers=["CPUExecutionProvider"]).run(None, {"x": x16})
    model = edgeseal.load(sealed_onnx, key=device, trusted=[publisher.public_key()])
    out = model.run(x16)
    assert model.backend == "onnxruntime"
    assert [s.name for s in model.inputs] == ["x"] and model.inputs[0].shape == (None, 16)
    assert [s.name for s in model.outputs] == ["logits", "probs"]
    np.testing.assert_array_equal(out["logits"], plain[0])
    np.testing.assert_array_equal(out["probs"], plain[1])


def test_tflite_outputs_identical_to_plain_litert(tflite_model, publisher, device):
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(2).standard_normal((1, 1, 8, 8)).astype(np.float32)
    it = Interpreter(model_content=tflite_model)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    plain = it.get_tensor(it.get_output_details()[0]["index"])

    package = edgeseal.seal(tflite_model, publisher=publisher, devices=[device], cipher="chacha20-poly1305")
    model = edgeseal.load(package, key=device, trusted=[publisher])
    assert model.manifest.content_format == "tflite" and model.backend == "litert"
    (out,) = model.run(x).values()
    assert out.shape == (1, 10)
    np.testing.assert_array_equal(out, plain)
    model.close()


@pytest.mark.parametrize("cipher", ["aes-256-gcm", "chacha20-poly1305"])
@pytest.mark.parametrize("compression", ["none", "zlib"])
def test_ciphers_and_codecs_round_trip(onnx_model, publisher, device, x16, cipher, compression):
    package = edgeseal.seal(onnx_model, publisher=publisher, devices=[device], cipher=cipher, compression=compression)
    info = edgeseal.inspect(package)
    assert info.manifest.payload.cipher.value == cipher
    assert info.manifest.payload.codec.value == compression
    ref = edgeseal.load(package, key=device, trusted=[publisher]).run(x16)["logits"]
    assert ref.shape == (5, 4) and np.isfinite(ref).all()


def test_multi_chunk_payload_round_trips(publisher, device):
    from edgeseal.runtime.format import Manifest, Package, RawKeyRecipient, write_package

    payload = np.random.default_rng(3).bytes(5 * 1024 + 17)
    raw = b"r" * 32
    data = write_package(payload, Manifest(content_format="bin"), [RawKeyRecipient(raw)], publisher, chunk_size=1024)
    package = Package.parse(data)
    assert package.manifest.payload.size == len(payload)
    assert len(package.ciphertext) == len(payload) + 16 * 6
    package.authenticate([edgeseal.runtime.format.crypto.raw_public(publisher.public_key())])
    assert bytes(package.decrypt(package.content_key(raw)).view) == payload


def test_every_slot_type_opens(onnx_model, publisher, device, x16):
    raw = edgeseal.RawKey.generate()
    package = edgeseal.seal(onnx_model, publisher=publisher, devices=[device], passphrase="correct horse", raw_keys=[raw])
    outs = [
        edgeseal.load(package, key=k, trusted=[publisher]).run(x16)["logits"]
        for k in (device, raw, edgeseal.Passphrase("correct horse"))
    ]
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_wrong_device_key_raises_no_matching_key(sealed_onnx, publisher):
    with pytest.raises(NoMatchingKey, match="no key slot of this package is for device key") as err:
        edgeseal.load(sealed_onnx, key=edgeseal.generate_device_key(), trusted=[publisher])
    assert isinstance(err.value, InvalidPackage)


def test_wrong_passphrase_is_opaque_invalid_package(onnx_model, publisher):
    package = edgeseal.seal(onnx_model, publisher=publisher, passphrase="right")
    with pytest.raises(InvalidPackage) as err:
        edgeseal.load(package, key=edgeseal.Passphrase("wrong"), trusted=[publisher])
    assert type(err.value) is InvalidPackage
    assert "damaged, was modified, or the key does not open it" in str(err.value)


def test_unknown_publisher_raises_untrusted(sealed_onnx, device):
    other = edgeseal.generate_publisher_key()
    with pytest.raises(UntrustedPublisher, match="not among the 1 trusted publisher key"):
        edgeseal.load(sealed_onnx, key=device, trusted=[other.public_key()])
    with pytest.raises(UntrustedPublisher, match="no trusted publisher keys were given"):
        edgeseal.load(sealed_onnx, key=device)


def test_unsigned_refused_unless_allowed(onnx_model, device, x16):
    package = edgeseal.seal(onnx_model, unsigned=True, devices=[device])
    with pytest.raises(UnsignedPackage, match="allow_unsigned=True"):
        edgeseal.load(package, key=device, trusted=[edgeseal.generate_publisher_key()])
    model = edgeseal.load(package, key=device, allow_unsigned=True)
    assert model.publisher is None and model.run(x16)["probs"].shape == (5, 4)


def test_sealing_without_signer_needs_explicit_unsigned(onnx_model, device):
    with pytest.raises(ConfigError, match="publisher key"):
        edgeseal.seal(onnx_model, devices=[device])
    with pytest.raises(ConfigError, match="at least one"):
        edgeseal.seal(onnx_model, publisher=edgeseal.generate_publisher_key())


def test_version_below_floor_rejected(onnx_model, publisher, device):
    package = edgeseal.seal(onnx_model, publisher=publisher, devices=[device], version=3, name="digits")
    assert edgeseal.load(package, key=device, trusted=[publisher], min_version=3).manifest.model_version == 3
    with pytest.raises(RollbackRejected, match=r"'digits' version 3 is below the minimum version 4"):
        edgeseal.load(package, key=device, trusted=[publisher], min_version=4)


def test_expired_package_rejected(onnx_model, publisher, device):
    now = 1_800_000_000
    package = edgeseal.seal(onnx_model, publisher=publisher, devices=[device], expires=dt.timedelta(days=1), now=now)
    assert edgeseal.inspect(package).manifest.expires_at == now + 86400
    edgeseal.load(package, key=device, trusted=[publisher], now=now + 86399)
    with pytest.raises(PackageExpired, match="expired at"):
        edgeseal.load(package, key=device, trusted=[publisher], now=now + 86400)


def test_input_validation_before_backend(sealed_onnx, publisher, device):
    model = edgeseal.load(sealed_onnx, key=device, trusted=[publisher])
    with pytest.raises(InvalidInput, match=r"input 'x' has dtype float64, the model expects float32"):
        model.run(np.zeros((1, 16)))
    with pytest.raises(InvalidInput, match=r"input 'x' has shape \(1, 15\), the model expects x: float32\[\?, 16\]"):
        model.run(np.zeros((1, 15), np.float32))
    with pytest.raises(InvalidInput, match=r"missing \['x'\], unknown \['y'\]"):
        model.run({"y": np.zeros((1, 16), np.float32)})
    with pytest.raises(InvalidInput, match=r"input 'x' must be a numpy array \(or a list\) of float32\[\?, 16\], got set"):
        model.run({"x": {0.0}})


def test_closed_model_refuses_to_run(sealed_onnx, publisher, device, x16):
    with edgeseal.load(sealed_onnx, key=device, trusted=[publisher]) as model:
        model.run(x16)
    with pytest.raises(ConfigError, match="is closed"):
        model.run(x16)


def test_dataset_packages_open_as_bytes(publisher, device):
    import io

    buf = io.BytesIO()
    np.savez(buf, x=np.arange(6, dtype=np.float32), y=np.array([1, 2]))
    package = edgeseal.seal(buf.getvalue(), publisher=publisher, devices=[device], kind="dataset", name="eval")
    with pytest.raises(ConfigError, match="holds a dataset, not a model"):
        edgeseal.load(package, key=device, trusted=[publisher])
    manifest, plain = edgeseal.open_payload(package, key=device, trusted=[publisher])
    assert manifest.content_format == "npz" and manifest.kind.value == "dataset"
    with np.load(io.BytesIO(plain.freeze())) as z:
        np.testing.assert_array_equal(z["x"], np.arange(6, dtype=np.float32))
    plain.wipe()
    assert not any(plain.view)


def test_sealing_for_a_target_takes_its_cipher_and_checks_ops(onnx_model, tflite_model, publisher, device):
    rpi4 = edgeseal.inspect(edgeseal.seal(onnx_model, publisher=publisher, devices=[device], target="rpi4"))
    assert rpi4.manifest.target == "rpi4" and rpi4.manifest.payload.cipher.value == "chacha20-poly1305"
    rpi5 = edgeseal.inspect(edgeseal.seal(onnx_model, publisher=publisher, devices=[device], target="rpi5"))
    assert rpi5.manifest.payload.cipher.value == "aes-256-gcm"
    with pytest.raises(edgeseal.UnsupportedError, match="runs tflite models"):
        edgeseal.seal(onnx_model, publisher=publisher, devices=[device], target="android-arm64")
    with pytest.raises(edgeseal.UnsupportedError, match="runs onnx models"):
        edgeseal.seal(tflite_model, publisher=publisher, devices=[device], target="rpi4")
