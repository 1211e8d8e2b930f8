import sys; sys.path.insert(0, __import__("os").path.dirname(__file__))
from lib import *
from edgeseal.converters.ptq import weight_sensitivity
r = weight_sensitivity((C/"pre.onnx").read_bytes(), calib, samples=16)
for x in r[:6]: print(x)
