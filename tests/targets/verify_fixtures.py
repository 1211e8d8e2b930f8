"""Fixtures for the targets/verify tests: a digits CNN (fp32, int8, over-pruned int8), keys, a loopback sshd.

Built in code from scikit-learn's digits (no downloads); cached per test session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    y = d.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)


def _train(x: np.ndarray, y: np.ndarray):
    import torch
    from torch import nn

    torch.manual_seed(0)
    torch.set_num_threads(1)  # a tiny net: threads only add overhead on a shared 2-core CI box
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 32), nn.ReLU(), nn.Linear(32, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(20):
        for i in range(0, len(xt), 128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[i : i + 128]), yt[i : i + 128]).backward()
            opt.step()
    return model.eval()


def _prune(model, fraction: float):
    """Deliberately over-prune: zero the smallest ``fraction`` of every weight matrix (a copy)."""
    import copy

    import torch

    model = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                thr = p.abs().flatten().kthvalue(int(p.numel() * fraction)).values
                p[p.abs() <= thr] = 0.0
    return model


def _export(model, path: Path) -> None:
    import torch

    torch.onnx.export(
        model, (torch.zeros(1, 1, 8, 8),), str(path), input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False, opset_version=17,
    )


def _quantize(fp32: Path, out: Path, calib: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"image": calib[i : i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.it, None)

    quantize_static(
        str(fp32), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )


def build_digits(directory: Path, *, prune: float = 0.6) -> dict[str, Path]:
    """Digits CNN as ONNX: ``fp32``, ``int8`` (QDQ, per-channel), ``pruned_int8`` (``prune`` of every
    weight matrix zeroed, then int8) and the test split as ``data`` .npz (``image``, ``labels``)."""
    directory.mkdir(parents=True, exist_ok=True)
    xtr, xte, ytr, yte = digits_split()
    model = _train(xtr, ytr)
    out = {k: directory / f"digits_{k}.onnx" for k in ("fp32", "int8", "pruned_fp32", "pruned_int8")}
    _export(model, out["fp32"])
    _quantize(out["fp32"], out["int8"], xtr[:200])
    _export(_prune(model, prune), out["pruned_fp32"])
    _quantize(out["pruned_fp32"], out["pruned_int8"], xtr[:200])
    out["data"] = directory / "digits_test.npz"
    np.savez(out["data"], image=xte, labels=yte)
    return out


# --- shared, built once per test process ----------------------------------------------------

import functools  # noqa: E402
import getpass  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402


@functools.cache
def workspace() -> Path:
    return Path(tempfile.mkdtemp(prefix="edgeseal-test-verify-"))


@functools.cache
def digits() -> dict[str, Path]:
    """The digits models and data, trained once per test process (~10 s)."""
    return build_digits(workspace() / "digits")


@functools.cache
def keys() -> dict[str, Path]:
    """A publisher key pair and a device key pair as PEM files (what `edgeseal keygen` writes)."""
    from edgeseal.runtime import keys as k

    d = workspace() / "keys"
    d.mkdir(exist_ok=True)
    pub, dev, other = k.generate_publisher_key(), k.generate_device_key(), k.generate_publisher_key()
    (d / "publisher.pem").write_bytes(k.private_pem(pub))
    (d / "publisher.pub").write_bytes(k.public_pem(pub.public_key()))
    (d / "other.pub").write_bytes(k.public_pem(other.public_key()))
    (d / "other.pem").write_bytes(k.private_pem(other))
    (d / "device.pem").write_bytes(k.private_pem(dev))
    (d / "device.pub").write_bytes(k.public_pem(dev.public_key()))
    return {p.stem + p.suffix.replace(".", "_"): p for p in d.iterdir()}


def seal_for(model: Path, target: str | None, name: str) -> Path:
    import edgeseal

    k = keys()
    out = workspace() / f"{name}.eseal"
    if not out.exists():
        edgeseal.seal(model, publisher=k["publisher_pem"], devices=[k["device_pub"]], target=target, out=out)
    return out


def leftovers(root: str = "/tmp") -> list[str]:
    """Work dirs the harness creates on a 'device' (local and ssh both use /tmp/edgeseal-verify*)."""
    return sorted(p for p in os.listdir(root) if p.startswith("edgeseal-verify"))


# --- a real OpenSSH server on loopback -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SSHD:
    """sshd on 127.0.0.1:<high port> with a throwaway host key and user key (needs root + openssh-server)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "user_key", "wrong_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)], check=True)
        shutil.copy(directory / "user_key.pub", directory / "authorized_keys")
        self.port = _free_port()
        self.user = getpass.getuser()
        (directory / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_key'}\n"
            f"AuthorizedKeysFile {directory / 'authorized_keys'}\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
            f"StrictModes no\nUsePAM no\nPidFile {directory / 'sshd.pid'}\n"
        )
        host_pub = (directory / "host_key.pub").read_text().split()
        (directory / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = subprocess.Popen([shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f",
                                      str(directory / "sshd_config")], stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("sshd did not start")

    @property
    def identity(self) -> str:
        return str(self.dir / "user_key")

    @property
    def known_hosts(self) -> str:
        return str(self.dir / "known_hosts")

    def url(self, python: str | None = None) -> str:
        base = f"ssh://{self.user}@127.0.0.1:{self.port}"
        return base + (f"?python={python}" if python else "")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def sshd_problem() -> str | None:
    """Why a loopback sshd cannot run here (None when it can)."""
    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        return "openssh-server is not installed (apt-get install -y openssh-server openssh-client)"
    if shutil.which("ssh") is None:
        return "the ssh client is not installed (apt-get install -y openssh-client)"
    if os.geteuid() != 0:
        return "sshd with a throwaway host key needs root in this test set-up"
    return None


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 for the module (skipped, saying why, where none can run)."""
    problem = sshd_problem()
    if problem:
        pytest.skip(problem)
    server = SSHD(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()
