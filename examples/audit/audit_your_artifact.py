"""Audit your own sealed int8 artifact with the edgeseal.audit building blocks.

`edgeseal audit` runs the whole study on built-in datasets. For your own model you
compose the same pieces: wrap what ships as an Artifact (here a sealed package
opened by the runtime), keep the fp32 torch model as the white-box reference, and
call the attacks. About 1-2 minutes of CPU:

    python examples/audit/audit_your_artifact.py
"""

from __future__ import annotations

import numpy as np
import torch

import edgeseal
from edgeseal.audit import SealedArtifact, TorchArtifact
from edgeseal.audit import membership as MI
from edgeseal.audit.data import load_dataset, member_split
from edgeseal.audit.disagreement import search_disagreements
from edgeseal.audit.robustness import pgd, random_search_attack, robust_accuracy
from edgeseal.audit.training import TrainConfig, make_mlp, train_classifier
from edgeseal.converters.export import export_onnx
from edgeseal.converters.quantize import quantize_onnx_static
from edgeseal.runtime.keys import generate_device_key, generate_publisher_key

torch.set_num_threads(2)
ds = load_dataset("digits")
split = member_split(len(ds.y), seed=0)
is_member = np.isin(np.arange(len(ds.y)), split.members)
recipe = TrainConfig(hidden=(128,), epochs=60, batch_size=32)

# 1. Your model and what you ship: fp32 torch -> int8 ONNX -> sealed package.
model = train_classifier(make_mlp(64, 10, recipe.hidden, seed=0), ds.x[split.members], ds.y[split.members],
                         recipe, seed=0)
int8 = quantize_onnx_static(export_onnx(model, ds.x[split.members]).model, ds.x[split.members])
publisher, device = generate_publisher_key(), generate_device_key()
package = edgeseal.seal(int8, publisher=publisher, devices=[device.public_key()], name="digits-int8")

fp32 = TorchArtifact(name="fp32", kind="fp32", module=model)
shipped = SealedArtifact(name="int8", kind="int8", package=package,
                         load_options={"key": device, "trusted": [publisher.public_key()]})

# 2. Membership inference, black-box on the sealed package. LiRA needs the attacker's
#    reference models: same recipe, random halves of the data pool.
def train_fn(x, y, seed):
    m = train_classifier(make_mlp(64, 10, recipe.hidden, seed=seed), x, y, recipe, seed=seed)
    return TorchArtifact(name="ref", kind="fp32", module=m).predict


refs = MI.train_reference_models(ds.x, ds.y, count=4, seed=1, train_fn=train_fn)
for art in (fp32, shipped):
    z = art.predict(ds.x)
    for attack in ("loss", "lira"):
        r = MI.evaluate_scores(attack, MI.attack_scores(attack, z, ds.y, refs), is_member)
        print(f"{art.name:5s} {attack:5s} AUC {r.auc:.3f}  TPR@1%FPR {r.tpr_at_1pct_fpr:.3f}")

# 3. Robustness: PGD crafted on fp32 and transferred, plus a black-box attack on the package.
x, y = ds.x[split.nonmembers[:200]], ds.y[split.nonmembers[:200]]
x_pgd = pgd(model, x, y, 0.1, steps=20, step=0.025, lo=0.0, hi=1.0)
x_bb = random_search_attack(shipped, x, y, 0.1, queries=200, lo=0.0, hi=1.0)
print(f"robust accuracy at eps=0.1: fp32 PGD {robust_accuracy(fp32, x_pgd, y):.3f}, "
      f"int8 transferred PGD {robust_accuracy(shipped, x_pgd, y):.3f}, int8 black-box {robust_accuracy(shipped, x_bb, y):.3f}")

# 4. Where does the sealed int8 model disagree with fp32 near the data?
d = search_disagreements(fp32, shipped, x, ds.x, radius=0.1, queries=200, lo=0.0, hi=1.0)
print(f"int8/fp32 disagreements: {d.found}/{d.start_points} within L-inf 0.1 "
      f"({d.natural} on the data itself); {shipped.queries} queries to the sealed model in all")
