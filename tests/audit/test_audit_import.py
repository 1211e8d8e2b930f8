import subprocess
import sys


def test_importing_audit_and_building_its_cli_does_not_import_torch():
    code = ("import sys, argparse, edgeseal.audit as a; p = argparse.ArgumentParser(); "
            "a.add_parser(p.add_subparsers()); "
            "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'opacus', 'matplotlib', 'sklearn') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
