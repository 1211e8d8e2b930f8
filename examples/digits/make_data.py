"""Write the digits splits as .npz and a trained state dict, for recipe.toml and the CLI.

    python examples/digits/make_data.py          # -> out/digits/{train,calib,eval}.npz, digits.pt
    edgeseal compress --recipe examples/digits/recipe.toml -o out/digits/digits.int8.onnx
"""

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    import torch

    from edgeseal.converters.zoo import load_digits_split, train_digits_cnn

    out = ROOT / "out" / "digits"
    out.mkdir(parents=True, exist_ok=True)
    d = load_digits_split()
    np.savez(out / "train.npz", x=d.x_train, y=d.y_train)
    np.savez(out / "calib.npz", x=d.x_val, y=d.y_val)  # validation split: calibration and the int8 budget
    np.savez(out / "eval.npz", x=d.x_val, y=d.y_val)
    np.savez(out / "test.npz", x=d.x_test, y=d.y_test)  # keep for the final number (--eval out/digits/test.npz)
    torch.save(train_digits_cnn(d, epochs=15).state_dict(), out / "digits.pt")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
